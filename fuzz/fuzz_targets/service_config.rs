//! Any YAML text (with `${VAR}` substitutions): a config or an error naming
//! the key, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let env = |name: &str| (name.len() % 2 == 0).then(|| format!("v-{name}"));
    if let Err(error) = sfstream_service::config::Config::from_yaml_with_env(text, env) {
        let _ = error.to_string();
    }
});
