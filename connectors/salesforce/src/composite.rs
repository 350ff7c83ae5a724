//! Several reads in one call: Salesforce's `composite` resource runs up to 25 subrequests in
//! order and "the entire series of requests counts as a single call toward your API limits";
//! at most 5 of them may be queries. The reader uses it where it asks small things together
//! (a fingerprint's latest rows and its count, the objects it describes, the setup entities'
//! names): one call and one round trip instead of several.
//!
//! Each subrequest answers on its own (`allOrNone` is false): one that fails does not fail the
//! others. One that failed for a passing reason (a busy org, a locked row) is asked again by
//! itself, with the client's retries.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{classify, parse_page, Outcome, QueryPage, SalesforceClient};
use crate::error::SalesforceError;
use crate::limits::ApiUsage;
use crate::soql::Query;

/// Salesforce's limit on query subrequests in one `composite` call.
pub const MAX_QUERIES: usize = 5;

/// Salesforce's limit on subrequests in one `composite` call.
pub const MAX_SUBREQUESTS: usize = 25;

impl SalesforceClient {
    /// The first page of each query, in one call (queries beyond [`MAX_QUERIES`] go in more),
    /// taken in the order listed.
    pub async fn queries(
        &self,
        queries: &[&Query],
    ) -> Result<Vec<Result<QueryPage, SalesforceError>>, SalesforceError> {
        let mut pages = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(MAX_QUERIES) {
            let gets: Vec<(String, bool)> = chunk
                .iter()
                .map(|query| (self.query_path(query), true))
                .collect();
            // Once one is asked again, so are the ones after it: each query's answer is
            // taken after the answers of those before it.
            let mut again = false;
            for (answer, query) in self.gets(&gets).await?.into_iter().zip(chunk) {
                again |= matches!(answer, Answer::Again);
                pages.push(match answer {
                    _ if again => self.query(query).await,
                    Answer::Body(body) => parse_page(body),
                    Answer::Failed(err) => Err(err),
                    Answer::Again => unreachable!("asked again above"),
                });
            }
        }
        Ok(pages)
    }

    /// The answer to each GET of a data path, in one call (more beyond [`MAX_SUBREQUESTS`]).
    pub async fn get_many(
        &self,
        paths: &[String],
    ) -> Result<Vec<Result<Value, SalesforceError>>, SalesforceError> {
        let mut answers = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(MAX_SUBREQUESTS) {
            let gets: Vec<(String, bool)> = chunk.iter().map(|p| (p.clone(), false)).collect();
            for (answer, path) in self.gets(&gets).await?.into_iter().zip(chunk) {
                answers.push(match answer {
                    Answer::Body(body) => Ok(body),
                    Answer::Again => self.get_json(path).await,
                    Answer::Failed(err) => Err(err),
                });
            }
        }
        Ok(answers)
    }

    /// One `composite` call of GETs (`true`: a query, sent with the batch size), each
    /// subrequest's answer apart.
    async fn gets(&self, gets: &[(String, bool)]) -> Result<Vec<Answer>, SalesforceError> {
        let options = format!("batchSize={}", self.batch_size());
        let requests: Vec<Value> = gets
            .iter()
            .enumerate()
            .map(|(index, (url, query))| {
                let mut request =
                    json!({ "method": "GET", "url": url, "referenceId": format!("r{index}") });
                if *query {
                    request["httpHeaders"] = json!({ "Sforce-Query-Options": options });
                }
                request
            })
            .collect();
        let body = json!({ "allOrNone": false, "compositeRequest": requests });
        // Only reads: safe to send again after a cut connection.
        let (_, mut answer) = self
            .send_json(Method::POST, &self.data_path("composite"), &body, true)
            .await?;
        let responses = match answer["compositeResponse"].take() {
            Value::Array(responses) if responses.len() == gets.len() => responses,
            _ => {
                return Err(SalesforceError::UnexpectedBody {
                    status: 200,
                    detail: format!(
                        "a composite answer without {} subresponses in `compositeResponse`",
                        gets.len()
                    ),
                })
            }
        };
        let usage = self.api_usage();
        Ok(responses
            .into_iter()
            .enumerate()
            .map(|(index, response)| answer_of(index, response, usage))
            .collect())
    }
}

/// What subresponse `index` of a composite call says.
fn answer_of(index: usize, mut response: Value, usage: Option<ApiUsage>) -> Answer {
    if response["referenceId"] != Value::String(format!("r{index}")) {
        return Answer::Failed(SalesforceError::UnexpectedBody {
            status: 200,
            detail: format!("composite subresponse {index} out of order"),
        });
    }
    let status = response["httpStatusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(0);
    let body = response["body"].take();
    if (200..300).contains(&status) {
        return Answer::Body(body);
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    match classify(status, false, &bytes, usage) {
        Outcome::Done(_, value) => Answer::Body(value),
        Outcome::Retry(_) | Outcome::SessionExpired => Answer::Again,
        Outcome::Fail(err) => Answer::Failed(err),
    }
}

/// A subrequest's answer.
enum Answer {
    Body(Value),
    /// Failed for a passing reason (a busy org, a locked row, a session that just expired):
    /// worth asking again by itself, with the client's retries and renewal.
    Again,
    Failed(SalesforceError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subresponse(index: usize, status: u16, body: Value) -> Value {
        json!({ "body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": format!("r{index}") })
    }

    #[test]
    fn a_subresponse_is_a_body_a_failure_of_its_own_or_worth_asking_again() {
        let page = json!({ "totalSize": 1, "done": true, "records": [{ "Id": "005" }] });
        assert!(
            matches!(answer_of(0, subresponse(0, 200, page.clone()), None), Answer::Body(b) if b == page)
        );
        let missing = json!([{ "errorCode": "INVALID_TYPE", "message": "sObject type 'X' is not supported." }]);
        match answer_of(1, subresponse(1, 400, missing), None) {
            Answer::Failed(err) => assert_eq!(err.code(), Some("INVALID_TYPE")),
            _ => panic!("a missing object fails its own subrequest"),
        }
        for (status, code) in [
            (503, "SERVER_UNAVAILABLE"),
            (400, "UNABLE_TO_LOCK_ROW"),
            (401, "INVALID_SESSION_ID"),
        ] {
            let busy = json!([{ "errorCode": code, "message": "try again" }]);
            assert!(
                matches!(
                    answer_of(2, subresponse(2, status, busy), None),
                    Answer::Again
                ),
                "{code}"
            );
        }
        let limit = json!([{ "errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded." }]);
        assert!(matches!(
            answer_of(0, subresponse(0, 403, limit), None),
            Answer::Failed(SalesforceError::DailyLimitExceeded { .. })
        ));
        // Out of order, or not a subresponse at all: never taken for another query's answer.
        assert!(matches!(
            answer_of(1, subresponse(0, 200, page), None),
            Answer::Failed(_)
        ));
        assert!(matches!(answer_of(0, json!(null), None), Answer::Failed(_)));
    }
}
