//! SOQL queries (as a lazily paged stream, collected, counted, typed) and
//! SOSL search.

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Record;
use super::client::{Call, SalesforceClient};
use super::error::RestError;
use super::records::object;

/// One page of a query result.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    /// How many records the whole query matched.
    pub total_size: u64,
    /// Whether this is the last page.
    pub done: bool,
    /// The records of this page (with their `attributes`).
    pub records: Vec<Record>,
    /// Where the next page is, when not done.
    pub next_records_url: Option<String>,
}

impl QueryPage {
    fn parse(body: Value) -> Result<Self, RestError> {
        let mut body = object(body, "query")?;
        let records = match body.remove("records") {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|r| object(r, "query record"))
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(RestError::decode("query: records is not an array")),
        };
        let done = body.get("done").and_then(Value::as_bool).unwrap_or(true);
        let next_records_url = body
            .get("nextRecordsUrl")
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|_| !done);
        if !done && next_records_url.is_none() {
            return Err(RestError::decode(
                "query: not done, but no nextRecordsUrl given",
            ));
        }
        Ok(Self {
            total_size: body.get("totalSize").and_then(Value::as_u64).unwrap_or(0),
            done,
            records,
            next_records_url,
        })
    }
}

/// Where the pager is.
enum Pager {
    First(Call),
    Next(String),
    Done,
}

impl SalesforceClient {
    /// The first page of `soql` (`query/?q=`).
    ///
    /// # Errors
    ///
    /// [`RestError::MalformedRequest`] (`MALFORMED_QUERY`, `INVALID_FIELD`,
    /// `INVALID_TYPE`, …), and as every call.
    pub async fn query_page(&self, soql: &str) -> Result<QueryPage, RestError> {
        QueryPage::parse(self.json(&Call::get("query").query("q", soql)).await?)
    }

    /// The `Id` of the first record of `soql`'s first page, if any (for
    /// lookups by a unique field).
    pub(crate) async fn first_id(&self, soql: &str) -> Result<Option<String>, RestError> {
        let page = self.query_page(soql).await?;
        Ok(page
            .records
            .first()
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// The page at `next_records_url` (from [`QueryPage::next_records_url`]).
    ///
    /// # Errors
    ///
    /// `INVALID_QUERY_LOCATOR` when the cursor expired, and as every call.
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage, RestError> {
        QueryPage::parse(self.json(&Call::get(next_records_url)).await?)
    }

    /// The records of `soql`, fetched page by page as the stream is
    /// consumed (following `nextRecordsUrl`). An error ends the stream.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use futures::TryStreamExt;
    /// use sfstream_salesforce::rest::{SalesforceClient, format_soql};
    /// # let org = sfstream_emulator::Emulator::start(Default::default()).await?;
    /// # let login = sfstream_testkit::emulator::authenticator(&org.url());
    /// let client = SalesforceClient::new(login);
    /// let soql = format_soql("SELECT Id, Name FROM RecordType WHERE SobjectType = {}", &[&"Contact"])?;
    /// let mut records = client.query(soql);
    /// while let Some(record) = records.try_next().await? {
    ///     println!("{} {}", record["Id"], record["Name"]);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn query(&self, soql: impl Into<String>) -> BoxStream<'static, Result<Record, RestError>> {
        self.paged(Call::get("query").query("q", soql.into()))
    }

    /// As [`SalesforceClient::query`], with deleted and archived records
    /// too (`queryAll/`).
    pub fn query_all(
        &self,
        soql: impl Into<String>,
    ) -> BoxStream<'static, Result<Record, RestError>> {
        self.paged(Call::get("queryAll").query("q", soql.into()))
    }

    /// Every record of `soql`, collected (for small results).
    ///
    /// # Errors
    ///
    /// As [`SalesforceClient::query_page`].
    pub async fn query_collect(&self, soql: &str) -> Result<Vec<Record>, RestError> {
        self.query(soql).try_collect().await
    }

    /// The records of `soql` deserialised into `T` (extra fields such as
    /// `attributes` are ignored unless `T` has them).
    pub fn query_as<T: DeserializeOwned + Send + 'static>(
        &self,
        soql: impl Into<String>,
    ) -> BoxStream<'static, Result<T, RestError>> {
        self.query(soql)
            .and_then(|record| async move {
                serde_json::from_value(Value::Object(record))
                    .map_err(|e| RestError::decode(format!("query record: {e}")))
            })
            .boxed()
    }

    /// The number of records `soql` matches; `soql` is a
    /// `SELECT COUNT() FROM …` query.
    ///
    /// # Errors
    ///
    /// As [`SalesforceClient::query_page`].
    pub async fn count(&self, soql: &str) -> Result<u64, RestError> {
        Ok(self.query_page(soql).await?.total_size)
    }

    /// The records a SOSL search finds (`search/?q=`), e.g.
    /// `FIND {Lovelace} IN NAME FIELDS RETURNING Contact(Id, Name)`. Escape
    /// user input in the term with [`escape_sosl`](super::escape_sosl).
    ///
    /// # Errors
    ///
    /// [`RestError::MalformedRequest`] (`MALFORMED_SEARCH`), and as every call.
    pub async fn search(&self, sosl: &str) -> Result<Vec<Record>, RestError> {
        let body = self.json(&Call::get("search").query("q", sosl)).await?;
        let records = match body {
            Value::Object(mut map) => map.remove("searchRecords").unwrap_or(Value::Null),
            list @ Value::Array(_) => list,
            _ => return Err(RestError::decode("search: unexpected answer")),
        };
        match records {
            Value::Array(items) => items
                .into_iter()
                .map(|r| object(r, "search record"))
                .collect(),
            Value::Null => Ok(Vec::new()),
            _ => Err(RestError::decode("search: searchRecords is not an array")),
        }
    }

    /// Pages lazily from a first call.
    fn paged(&self, first: Call) -> BoxStream<'static, Result<Record, RestError>> {
        let client = self.clone();
        stream::try_unfold(Pager::First(first), move |pager| {
            let client = client.clone();
            async move {
                let page = match pager {
                    Pager::Done => return Ok::<_, RestError>(None),
                    Pager::First(call) => QueryPage::parse(client.json(&call).await?)?,
                    Pager::Next(url) => client.query_more(&url).await?,
                };
                let next = match page.next_records_url {
                    Some(url) => Pager::Next(url),
                    None => Pager::Done,
                };
                Ok(Some((
                    stream::iter(page.records.into_iter().map(Ok::<_, RestError>)),
                    next,
                )))
            }
        })
        .try_flatten()
        .boxed()
    }
}

/// Escapes `text` for a SOSL `FIND {…}` term: the reserved characters
/// `? & | ! { } [ ] ( ) ^ ~ * : \ " ' + -` get a backslash.
pub fn escape_sosl(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if "?&|!{}[]()^~*:\\\"'+-".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages() {
        let page = QueryPage::parse(json!({"totalSize": 3, "done": false, "records": [{"Id": "1"}], "nextRecordsUrl": "/x"}))
            .expect("page");
        assert_eq!(page.next_records_url.as_deref(), Some("/x"));
        assert_eq!(page.total_size, 3);
        assert!(QueryPage::parse(json!({"totalSize": 3, "done": false, "records": []})).is_err());
        assert!(QueryPage::parse(json!([1])).is_err());
        assert!(QueryPage::parse(json!({"records": [1]})).is_err());
    }

    #[test]
    fn sosl_escapes() {
        assert_eq!(escape_sosl("a}b*c"), r"a\}b\*c");
    }
}
