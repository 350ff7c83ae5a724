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

use crate::client::{classify, page_of_value, Outcome, QueryPage, SalesforceClient};
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
            for (answer, query) in in_order(self.gets(&gets).await?).into_iter().zip(chunk) {
                pages.push(match answer {
                    Answer::Body(body) => page_of_value(body),
                    Answer::Again { .. } => self.query(query).await,
                    Answer::Failed(err) => Err(err),
                });
            }
        }
        Ok(pages)
    }

    /// The answer to each GET of a data path that is not a query (a describe, a record), in
    /// one call (more beyond [`MAX_SUBREQUESTS`]); queries go through [`Self::queries`], which
    /// keeps to Salesforce's five a call.
    pub async fn get_many(
        &self,
        paths: &[String],
    ) -> Result<Vec<Result<Value, SalesforceError>>, SalesforceError> {
        debug_assert!(
            !paths.iter().any(|path| path.contains("/query")),
            "queries go through `queries`"
        );
        let mut answers = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(MAX_SUBREQUESTS) {
            let gets: Vec<(String, bool)> = chunk.iter().map(|p| (p.clone(), false)).collect();
            for (answer, path) in self.gets(&gets).await?.into_iter().zip(chunk) {
                answers.push(match answer {
                    Answer::Body(body) => Ok(body),
                    Answer::Again { .. } => self.get_json(path).await,
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
        let answers: Vec<Answer> = responses
            .into_iter()
            .enumerate()
            .map(|(index, response)| answer_of(index, response, usage))
            .collect();
        // An org that says it is busy gets fewer requests at once, as after a call it refused.
        if answers
            .iter()
            .any(|answer| matches!(answer, Answer::Again { busy: true }))
        {
            self.lower_limit();
        }
        Ok(answers)
    }
}

/// The answers as they are to be taken when each must be taken after those before it: once
/// one is to be asked again, so is every one after it.
fn in_order(answers: Vec<Answer>) -> Vec<Answer> {
    let mut again = false;
    answers
        .into_iter()
        .map(|answer| {
            again |= matches!(answer, Answer::Again { .. });
            match again {
                true => Answer::Again { busy: false },
                false => answer,
            }
        })
        .collect()
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
        Outcome::Retry(err) => Answer::Again {
            busy: err.code() == Some("REQUEST_LIMIT_EXCEEDED"),
        },
        Outcome::SessionExpired => Answer::Again { busy: false },
        Outcome::Fail(err) => Answer::Failed(err),
    }
}

/// A subrequest's answer.
enum Answer {
    Body(Value),
    /// Failed for a passing reason (a busy org, a locked row, a session that just expired):
    /// worth asking again by itself, with the client's retries and renewal. `busy`: the org
    /// refused it as one request too many at once (`ConcurrentRequests`).
    Again {
        busy: bool,
    },
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
                    Answer::Again { busy: false }
                ),
                "{code}"
            );
        }
        let limit = json!([{ "errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded." }]);
        assert!(matches!(
            answer_of(0, subresponse(0, 403, limit), None),
            Answer::Failed(SalesforceError::DailyLimitExceeded { .. })
        ));
        let busy = json!([{ "errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentRequests (concurrent API requests) Limit exceeded." }]);
        assert!(matches!(
            answer_of(0, subresponse(0, 403, busy), None),
            Answer::Again { busy: true }
        ));
        // Out of order, or not a subresponse at all: never taken for another query's answer.
        assert!(matches!(
            answer_of(1, subresponse(0, 200, page), None),
            Answer::Failed(_)
        ));
        assert!(matches!(answer_of(0, json!(null), None), Answer::Failed(_)));
    }

    #[test]
    fn once_an_answer_is_asked_again_so_is_every_one_after_it() {
        let body = || Answer::Body(json!({}));
        let failed = || {
            Answer::Failed(SalesforceError::UnexpectedBody {
                status: 400,
                detail: String::new(),
            })
        };
        let again = || Answer::Again { busy: false };
        let shape = |answers: Vec<Answer>| -> String {
            in_order(answers)
                .iter()
                .map(|answer| match answer {
                    Answer::Body(_) => 'b',
                    Answer::Failed(_) => 'f',
                    Answer::Again { .. } => 'a',
                })
                .collect()
        };
        assert_eq!(shape(vec![body(), failed(), body()]), "bfb");
        assert_eq!(shape(vec![body(), again(), body(), failed()]), "baaa");
        assert_eq!(shape(vec![again(), body()]), "aa");
        assert_eq!(shape(vec![failed(), again()]), "fa");
        assert_eq!(shape(vec![]), "");
    }
}
