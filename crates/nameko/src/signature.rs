//! Declared RPC method signatures, checked like Nameko's
//! `Entrypoint.check_signature` (`inspect.getcallargs(fn, self, *args, **kwargs)`),
//! with CPython 3's exact `TypeError` texts.

use serde_json::{Map, Value};

/// The Python signature of an RPC method, used to answer
/// `IncorrectSignature` exactly as a Nameko service would.
///
/// The implicit `self` parameter is included automatically (Nameko checks
/// the unbound method, so its messages count `self`).
///
/// ```
/// use sfstream_nameko::Signature;
///
/// // def create_contact(self, last_name, email_address, sandbox=False)
/// let sig = Signature::new()
///     .param("last_name")
///     .param("email_address")
///     .param_with_default("sandbox");
/// assert!(sig.check("create_contact", 2, &Default::default()).is_ok());
/// assert_eq!(
///     sig.check("create_contact", 1, &Default::default()).unwrap_err(),
///     "create_contact() missing 1 required positional argument: 'email_address'"
/// );
/// assert_eq!(
///     sig.check("create_contact", 4, &Default::default()).unwrap_err(),
///     "create_contact() takes from 3 to 4 positional arguments but 5 were given"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    params: Vec<(String, bool)>,
    var_args: bool,
    var_kwargs: bool,
    kwonly: Vec<(String, bool)>,
}

impl Default for Signature {
    fn default() -> Self {
        Self::new()
    }
}

impl Signature {
    /// A signature with only `self`.
    pub fn new() -> Self {
        Self {
            params: vec![("self".to_owned(), false)],
            var_args: false,
            var_kwargs: false,
            kwonly: Vec::new(),
        }
    }

    /// Appends a positional-or-keyword parameter without a default.
    pub fn param(mut self, name: impl Into<String>) -> Self {
        self.params.push((name.into(), false));
        self
    }

    /// Appends a positional-or-keyword parameter with a default. As in Python,
    /// parameters with defaults must come after those without.
    pub fn param_with_default(mut self, name: impl Into<String>) -> Self {
        self.params.push((name.into(), true));
        self
    }

    /// Accepts extra positional arguments (`*args`).
    pub fn var_args(mut self) -> Self {
        self.var_args = true;
        self
    }

    /// Accepts extra keyword arguments (`**kwargs`).
    pub fn var_kwargs(mut self) -> Self {
        self.var_kwargs = true;
        self
    }

    /// Appends a keyword-only parameter (after `*` or `*args`).
    pub fn keyword_only(mut self, name: impl Into<String>, has_default: bool) -> Self {
        self.kwonly.push((name.into(), has_default));
        self
    }

    /// Checks that `n_args` positional arguments and `kwargs` bind to this
    /// signature; on failure returns the message `inspect.getcallargs` raises
    /// for a method called `fn_name`.
    pub fn check(
        &self,
        fn_name: &str,
        n_args: usize,
        kwargs: &Map<String, Value>,
    ) -> Result<(), String> {
        let args: Vec<&str> = self.params.iter().map(|(n, _)| n.as_str()).collect();
        let num_pos = n_args + 1; // + self
        let num_args = args.len();
        let num_defaults = self.params.iter().rev().take_while(|(_, d)| *d).count();
        let mut bound: Vec<&str> = args.iter().take(num_pos.min(num_args)).copied().collect();
        for kw in kwargs.keys() {
            let known = args.contains(&kw.as_str()) || self.kwonly.iter().any(|(n, _)| n == kw);
            if !known {
                if !self.var_kwargs {
                    return Err(format!(
                        "{fn_name}() got an unexpected keyword argument {}",
                        py_repr(kw)
                    ));
                }
                continue;
            }
            if bound.contains(&kw.as_str()) {
                return Err(format!(
                    "{fn_name}() got multiple values for argument {}",
                    py_repr(kw)
                ));
            }
            bound.push(kw.as_str());
        }
        if num_pos > num_args && !self.var_args {
            let atleast = num_args - num_defaults;
            let kwonly_given = self
                .kwonly
                .iter()
                .filter(|(n, _)| bound.contains(&n.as_str()))
                .count();
            let (sig, plural) = if num_defaults > 0 {
                (format!("from {atleast} to {num_args}"), true)
            } else {
                (num_args.to_string(), num_args != 1)
            };
            let kwonly_sig = if kwonly_given > 0 {
                format!(
                    " positional argument{} (and {} keyword-only argument{})",
                    if num_pos != 1 { "s" } else { "" },
                    kwonly_given,
                    if kwonly_given != 1 { "s" } else { "" }
                )
            } else {
                String::new()
            };
            return Err(format!(
                "{fn_name}() takes {sig} positional argument{} but {num_pos}{kwonly_sig} {} given",
                if plural { "s" } else { "" },
                if num_pos == 1 && kwonly_given == 0 {
                    "was"
                } else {
                    "were"
                }
            ));
        }
        if num_pos < num_args {
            let req = &args[..num_args - num_defaults];
            if req.iter().any(|a| !bound.contains(a)) {
                return Err(missing(fn_name, req, true, &bound));
            }
        }
        let kwonly_missing: Vec<&str> = self
            .kwonly
            .iter()
            .filter(|(n, d)| !d && !bound.contains(&n.as_str()))
            .map(|(n, _)| n.as_str())
            .collect();
        if !kwonly_missing.is_empty() {
            let all: Vec<&str> = self.kwonly.iter().map(|(n, _)| n.as_str()).collect();
            return Err(missing(fn_name, &all, false, &bound));
        }
        Ok(())
    }
}

/// CPython's `_missing_arguments`.
fn missing(fn_name: &str, argnames: &[&str], positional: bool, bound: &[&str]) -> String {
    let mut names: Vec<String> = argnames
        .iter()
        .filter(|a| !bound.contains(a))
        .map(|a| py_repr(a))
        .collect();
    let count = names.len();
    let s = match count {
        1 => names[0].clone(),
        2 => format!("{} and {}", names[0], names[1]),
        _ => {
            let tail = format!(", {} and {}", names[count - 2], names[count - 1]);
            names.truncate(count - 2);
            names.join(", ") + &tail
        }
    };
    format!(
        "{fn_name}() missing {count} required {} argument{}: {s}",
        if positional {
            "positional"
        } else {
            "keyword-only"
        },
        if count == 1 { "" } else { "s" }
    )
}

/// Python's `repr()` of a str (enough for identifiers and ordinary keys).
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kw(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    // Expected texts produced by CPython 3.11's inspect.getcallargs.
    #[test]
    fn matches_cpython_texts() {
        let hello = Signature::new()
            .param("name")
            .param_with_default("greeting")
            .keyword_only("k", true);
        let two = Signature::new().param("a").param("b");
        let cases: Vec<(&Signature, &str, usize, Value, Option<&str>)> = vec![
            (
                &hello,
                "hello",
                3,
                json!({}),
                Some("hello() takes from 2 to 3 positional arguments but 4 were given"),
            ),
            (
                &hello,
                "hello",
                0,
                json!({}),
                Some("hello() missing 1 required positional argument: 'name'"),
            ),
            (
                &hello,
                "hello",
                1,
                json!({"x": 1}),
                Some("hello() got an unexpected keyword argument 'x'"),
            ),
            (
                &hello,
                "hello",
                1,
                json!({"name": 2}),
                Some("hello() got multiple values for argument 'name'"),
            ),
            (
                &two,
                "two",
                0,
                json!({}),
                Some("two() missing 2 required positional arguments: 'a' and 'b'"),
            ),
            (
                &two,
                "two",
                1,
                json!({}),
                Some("two() missing 1 required positional argument: 'b'"),
            ),
            (
                &two,
                "two",
                4,
                json!({}),
                Some("two() takes 3 positional arguments but 5 were given"),
            ),
            (
                &two,
                "two",
                0,
                json!({"a": 1, "c": 2}),
                Some("two() got an unexpected keyword argument 'c'"),
            ),
            (&two, "two", 0, json!({"a": 1, "b": 2}), None),
            (&hello, "hello", 1, json!({"k": 2, "greeting": 1}), None),
        ];
        for (sig, name, n, kwargs, expected) in cases {
            let got = sig.check(name, n, &kw(kwargs.clone())).err();
            assert_eq!(got.as_deref(), expected, "{name} {n} {kwargs}");
        }
    }

    #[test]
    fn three_missing_and_kwonly() {
        let s = Signature::new().param("a").param("b").param("c");
        assert_eq!(
            s.check("f", 0, &Map::new()).unwrap_err(),
            "f() missing 3 required positional arguments: 'a', 'b' and 'c'"
        );
        let s = Signature::new().var_args().keyword_only("k", false);
        assert_eq!(
            s.check("g", 5, &Map::new()).unwrap_err(),
            "g() missing 1 required keyword-only argument: 'k'"
        );
        let s = Signature::new().var_kwargs();
        assert!(s.check("h", 0, &kw(json!({"anything": 1}))).is_ok());
        assert_eq!(
            s.check("h", 1, &Map::new()).unwrap_err(),
            "h() takes 1 positional argument but 2 were given"
        );
        // def i(self, a, *, k)
        let s = Signature::new().param("a").keyword_only("k", false);
        assert_eq!(
            s.check("i", 2, &kw(json!({"k": 1}))).unwrap_err(),
            "i() takes 2 positional arguments but 3 positional arguments (and 1 keyword-only argument) were given"
        );
        assert_eq!(
            s.check("i", 1, &Map::new()).unwrap_err(),
            "i() missing 1 required keyword-only argument: 'k'"
        );
    }
}
