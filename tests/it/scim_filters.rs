//! Generated SCIM filters against the served org, on SQLite and PostgreSQL: each filter is
//! built from the grammar of RFC 7644 section 3.4.2.2 over the attributes `/Schemas` publishes,
//! with values taken from the resources themselves (as written, in other cases, cut short,
//! with characters SQL treats specially), sent to the real server, and its answer compared with
//! an evaluation of the same filter, in this file, over the same resources as the server
//! renders them. The server must never answer 500, must run every filter it accepts on both
//! databases, and must select exactly what the evaluation selects.
//!
//! The evaluation knows nothing of Provost's SQL: it reads the resources as JSON and the
//! attributes' types and case-exactness from `/Schemas`, as a SCIM client would.
//!
//! `PROVOST_FILTER_CASES` sets how many filters each resource type gets (default 150) and
//! `PROVOST_FILTER_SEED` (0 to 255, default 7) which ones; a failure prints the filter, shrunk
//! to a smaller one that still fails. For a longer search:
//! `PROVOST_FILTER_CASES=5000 PROVOST_FILTER_SEED=1 cargo test --test it generated_filters`.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use provost_connector::times::Timestamp;
use serde_json::Value;

use crate::helpers::{bearer_client, on_each_backend};
use crate::provisioning::Fixture;

/// An attribute a filter can name: its path as written, and what `/Schemas` says of it.
#[derive(Debug, Clone)]
struct Leaf {
    /// As written in a filter (`userName`, `name.familyName`, `urn:...:User:department`).
    path: String,
    /// Where its values are in a resource: the extension's key (if any), then the names.
    at: Vec<String>,
    ty: String,
    case_exact: bool,
    /// A sub-attribute of a multi-valued complex attribute: any of its values may match.
    multi: bool,
}

/// A multi-valued complex attribute, for `attr[...]` filters: its name and its sub-leaves.
#[derive(Debug, Clone)]
struct Complex {
    path: String,
    at: Vec<String>,
    subs: Vec<Leaf>,
}

/// A generated filter, independent of the crate's own AST.
#[derive(Debug, Clone)]
enum F {
    Present(Leaf),
    Compare(Leaf, &'static str, Value),
    And(Box<F>, Box<F>),
    Or(Box<F>, Box<F>),
    Not(Box<F>),
    ValuePath(Complex, Box<F>),
}

impl F {
    fn render(&self) -> String {
        match self {
            F::Present(leaf) => format!("{} pr", leaf.path),
            F::Compare(leaf, op, value) => format!("{} {op} {value}", leaf.path),
            F::And(a, b) => format!("({} and {})", a.render(), b.render()),
            F::Or(a, b) => format!("({} or {})", a.render(), b.render()),
            F::Not(inner) => format!("not ({})", inner.render()),
            F::ValuePath(attr, inner) => format!("{}[{}]", attr.path, inner.render()),
        }
    }
}

/// The values of `at` in `doc`: an array's elements each, missing and null as none.
fn values_at<'v>(doc: &'v Value, at: &[String]) -> Vec<&'v Value> {
    let mut current = vec![doc];
    for key in at {
        let mut next = Vec::new();
        for value in current {
            let found = value.as_object().and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            });
            match found {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(Value::Null) | None => {}
                Some(other) => next.push(other),
            }
        }
        current = next;
    }
    current
}

fn instant(text: &str) -> Option<Timestamp> {
    provost_connector::times::parse_rfc3339(text)
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Whether one attribute value satisfies `op value`, as RFC 7644 defines the operators.
fn holds(leaf: &Leaf, have: &Value, op: &str, want: &Value) -> bool {
    match leaf.ty.as_str() {
        "boolean" => {
            let (Some(have), Some(want)) = (as_bool(have), as_bool(want)) else {
                return false;
            };
            match op {
                "eq" => have == want,
                "ne" => have != want,
                _ => unreachable!("only eq and ne are generated for booleans"),
            }
        }
        "dateTime" => {
            let (Some(have), Some(want)) = (
                have.as_str().and_then(instant),
                want.as_str().and_then(instant),
            ) else {
                return false;
            };
            match op {
                "eq" => have == want,
                "ne" => have != want,
                "gt" => have > want,
                "ge" => have >= want,
                "lt" => have < want,
                "le" => have <= want,
                _ => unreachable!("no substring operators are generated for times"),
            }
        }
        _ => {
            let (Some(have), Some(want)) = (have.as_str(), want.as_str()) else {
                return false;
            };
            let (have, want) = if leaf.case_exact {
                (have.to_owned(), want.to_owned())
            } else {
                (have.to_lowercase(), want.to_lowercase())
            };
            match op {
                "eq" => have == want,
                "ne" => have != want,
                "co" => have.contains(&want),
                "sw" => have.starts_with(&want),
                "ew" => have.ends_with(&want),
                "gt" => have > want,
                "ge" => have >= want,
                "lt" => have < want,
                "le" => have <= want,
                _ => unreachable!("{op}"),
            }
        }
    }
}

fn evaluate(filter: &F, doc: &Value) -> bool {
    match filter {
        F::Present(leaf) => values_at(doc, &leaf.at).iter().any(|v| match v {
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        }),
        F::Compare(leaf, op, Value::Null) => {
            let any = !values_at(doc, &leaf.at).is_empty();
            if *op == "eq" {
                !any
            } else {
                any
            }
        }
        F::Compare(leaf, op, want) if leaf.ty == "boolean" => {
            // A boolean that is not there is false (`primary` is shown only when true).
            let (parents, name) = leaf.at.split_at(leaf.at.len() - 1);
            values_at(doc, parents).iter().any(|parent| {
                let value = values_at(parent, name).first().copied().cloned();
                holds(leaf, &value.unwrap_or(Value::Bool(false)), op, want)
            })
        }
        F::Compare(leaf, op, want) => {
            let values = values_at(doc, &leaf.at);
            // A single-valued attribute that is absent is unequal to any value; a multi-valued
            // one with no values has none that is unequal.
            if values.is_empty() && *op == "ne" && !leaf.multi {
                return true;
            }
            values.iter().any(|have| holds(leaf, have, op, want))
        }
        F::And(a, b) => evaluate(a, doc) && evaluate(b, doc),
        F::Or(a, b) => evaluate(a, doc) || evaluate(b, doc),
        F::Not(inner) => !evaluate(inner, doc),
        F::ValuePath(attr, inner) => values_at(doc, &attr.at)
            .into_iter()
            .any(|element| evaluate(inner, element)),
    }
}

/// What `/Schemas` and `/ResourceTypes` say a resource type's filterable attributes are.
fn attributes(schemas: &Value, resource_type: &Value) -> (Vec<Leaf>, Vec<Complex>) {
    let core = resource_type["schema"].as_str().unwrap();
    let mut names = vec![(core.to_owned(), false)];
    for extension in resource_type["schemaExtensions"].as_array().unwrap() {
        names.push((extension["schema"].as_str().unwrap().to_owned(), true));
    }
    let mut leaves = vec![Leaf {
        path: "id".into(),
        at: vec!["id".into()],
        ty: "string".into(),
        case_exact: true,
        multi: false,
    }];
    let mut complexes = Vec::new();
    for (urn, is_extension) in names {
        let schema = schemas["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == urn.as_str())
            .unwrap();
        let prefix = |name: &str| {
            if is_extension {
                format!("{urn}:{name}")
            } else {
                name.to_owned()
            }
        };
        let base: Vec<String> = if is_extension {
            vec![urn.clone()]
        } else {
            Vec::new()
        };
        for attribute in schema["attributes"].as_array().unwrap() {
            let name = attribute["name"].as_str().unwrap();
            let ty = attribute["type"].as_str().unwrap();
            let multi = attribute["multiValued"] == true;
            let mut at = base.clone();
            at.push(name.to_owned());
            if ty == "complex" {
                let subs: Vec<Leaf> = attribute["subAttributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|s| s["type"] != "reference")
                    .map(|sub| {
                        let sub_name = sub["name"].as_str().unwrap();
                        let mut sub_at = at.clone();
                        sub_at.push(sub_name.to_owned());
                        Leaf {
                            path: format!("{}.{sub_name}", prefix(name)),
                            at: sub_at,
                            ty: sub["type"].as_str().unwrap().to_owned(),
                            case_exact: sub["caseExact"] == true,
                            multi,
                        }
                    })
                    .collect();
                leaves.extend(subs.iter().cloned());
                if multi {
                    complexes.push(Complex {
                        path: prefix(name),
                        at,
                        subs: subs
                            .iter()
                            .map(|leaf| Leaf {
                                path: leaf.path.rsplit('.').next().unwrap().to_owned(),
                                at: vec![leaf.at.last().unwrap().clone()],
                                multi: false,
                                ..leaf.clone()
                            })
                            .collect(),
                    });
                }
            } else if ty != "reference" {
                leaves.push(Leaf {
                    path: prefix(name),
                    at,
                    ty: ty.to_owned(),
                    case_exact: attribute["caseExact"] == true,
                    multi,
                });
            }
        }
    }
    if core.ends_with(":User") {
        leaves.push(Leaf {
            path: "externalId".into(),
            at: vec!["externalId".into()],
            ty: "string".into(),
            case_exact: true,
            multi: false,
        });
        leaves.push(Leaf {
            path: "meta.created".into(),
            at: vec!["meta".into(), "created".into()],
            ty: "dateTime".into(),
            case_exact: false,
            multi: false,
        });
    }
    (leaves, complexes)
}

/// Every value `leaf` has in `docs`, as strings (and booleans), to draw filter values from.
fn observed(leaf: &Leaf, docs: &[Value]) -> Vec<Value> {
    let mut seen: Vec<Value> = docs
        .iter()
        .flat_map(|d| values_at(d, &leaf.at).into_iter().cloned())
        .filter(|v| v.is_string() || v.is_boolean())
        .collect();
    seen.sort_by_key(|v| v.to_string());
    seen.dedup();
    seen
}

/// A value to compare `leaf` with: mostly one it holds somewhere, changed in the ways that find
/// bugs (case, prefixes and suffixes, characters LIKE treats specially, other time zones).
fn value_for(leaf: &Leaf, seen: Vec<Value>) -> BoxedStrategy<Value> {
    let seen_or = |fallback: Value| {
        if seen.is_empty() {
            vec![fallback]
        } else {
            seen.clone()
        }
    };
    match leaf.ty.as_str() {
        "boolean" => prop_oneof![
            Just(Value::Bool(true)),
            Just(Value::Bool(false)),
            Just(Value::String("True".into())),
            Just(Value::String("false".into())),
        ]
        .boxed(),
        "dateTime" => {
            let seen = seen_or(Value::String("2024-03-31T23:59:59Z".into()));
            (proptest::sample::select(seen), -2i64..=2, 0usize..3)
                .prop_map(|(value, shift, zone)| {
                    let at = instant(value.as_str().unwrap()).unwrap()
                        + chrono::TimeDelta::seconds(shift);
                    let offset = [0, 2, -5][zone];
                    let zone = chrono::FixedOffset::east_opt(offset * 3600).unwrap();
                    Value::String(at.with_timezone(&zone).to_rfc3339())
                })
                .boxed()
        }
        _ => {
            let seen = seen_or(Value::String("nobody".into()));
            let specials = proptest::sample::select(vec![
                "", "%", "_", "\\", "'", "\"", "a%b", "Ä", "é", "ß", "*", "x_y", "0", "Z",
            ]);
            prop_oneof![
                4 => proptest::sample::select(seen.clone()),
                2 => (proptest::sample::select(seen.clone()), 0usize..4, any::<bool>()).prop_map(|(value, cut, upper)| {
                    let text = value.as_str().unwrap_or_default();
                    let chars: Vec<char> = text.chars().collect();
                    let keep = chars.len().saturating_sub(cut).max(1).min(chars.len());
                    let part: String = if cut % 2 == 0 {
                        chars[..keep].iter().collect()
                    } else {
                        chars[chars.len() - keep..].iter().collect()
                    };
                    Value::String(if upper { part.to_uppercase() } else { part })
                }),
                1 => specials.prop_map(|s| Value::String(s.to_owned())),
            ]
            .boxed()
        }
    }
}

fn operators(leaf: &Leaf) -> Vec<&'static str> {
    match leaf.ty.as_str() {
        "boolean" => vec!["eq", "ne"],
        "dateTime" => vec!["eq", "ne", "gt", "ge", "lt", "le"],
        _ => vec!["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"],
    }
}

fn leaf_filter(leaves: Vec<Leaf>, docs: Vec<Value>) -> BoxedStrategy<F> {
    proptest::sample::select(leaves)
        .prop_flat_map(move |leaf| {
            let present = Just(F::Present(leaf.clone()));
            let null = proptest::sample::select(vec!["eq", "ne"]).prop_map({
                let leaf = leaf.clone();
                move |op| F::Compare(leaf.clone(), op, Value::Null)
            });
            let compare = (
                proptest::sample::select(operators(&leaf)),
                value_for(&leaf, observed(&leaf, &docs)),
            )
                .prop_map({
                    let leaf = leaf.clone();
                    move |(op, value)| F::Compare(leaf.clone(), op, value)
                });
            if leaf.ty == "string" {
                prop_oneof![1 => present, 1 => null, 8 => compare].boxed()
            } else {
                prop_oneof![1 => present, 8 => compare].boxed()
            }
        })
        .boxed()
}

/// Filters over `leaves`, with `attr[...]` filters over `complexes`, nested a few levels.
fn filters(leaves: Vec<Leaf>, complexes: Vec<Complex>, docs: Vec<Value>) -> BoxedStrategy<F> {
    let leaf = leaf_filter(leaves, docs.clone());
    let value_paths = if complexes.is_empty() {
        leaf.clone()
    } else {
        let docs = docs.clone();
        proptest::sample::select(complexes)
            .prop_flat_map(move |complex| {
                let elements: Vec<Value> = docs
                    .iter()
                    .flat_map(|d| values_at(d, &complex.at).into_iter().cloned())
                    .collect();
                let inner = leaf_filter(complex.subs.clone(), elements);
                let inner = inner.prop_recursive(1, 3, 2, |inner| {
                    prop_oneof![
                        (inner.clone(), inner.clone())
                            .prop_map(|(a, b)| F::And(Box::new(a), Box::new(b))),
                        (inner.clone(), inner.clone())
                            .prop_map(|(a, b)| F::Or(Box::new(a), Box::new(b))),
                        inner.prop_map(|a| F::Not(Box::new(a))),
                    ]
                });
                inner.prop_map(move |inner| F::ValuePath(complex.clone(), Box::new(inner)))
            })
            .boxed()
    };
    prop_oneof![4 => leaf, 1 => value_paths]
        .prop_recursive(3, 8, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| F::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| F::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|a| F::Not(Box::new(a))),
            ]
        })
        .boxed()
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_filters_select_what_an_evaluation_of_the_resources_selects() {
    let cases: u32 = std::env::var("PROVOST_FILTER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let seed: u8 = std::env::var("PROVOST_FILTER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let client = bearer_client(&fixture.store, "filters", &["scim:read"]).await;
        let base = format!("{}/orgs/acme/scim/v2", fixture.api);
        let get = |url: String| {
            let client = client.clone();
            async move {
                let response = client.get(url).send().await.unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let schemas = get(format!("{base}/Schemas")).await.1;
        let types = get(format!("{base}/ResourceTypes")).await.1;
        let handle = tokio::runtime::Handle::current();
        let refused_as_unfilterable = std::sync::atomic::AtomicUsize::new(0);
        for resource_type in types["Resources"].as_array().unwrap() {
            let endpoint = resource_type["endpoint"].as_str().unwrap();
            let (status, all) = get(format!("{base}{endpoint}?count=1000")).await;
            assert_eq!(status, 200);
            let docs: Vec<Value> = all["Resources"].as_array().unwrap().clone();
            assert!(docs.len() < 1000, "every {endpoint} on one page");
            let (leaves, complexes) = attributes(&schemas, resource_type);
            let strategy = filters(leaves, complexes, docs.clone());
            let mut runner = TestRunner::new_with_rng(
                RunnerConfig {
                    cases,
                    failure_persistence: None,
                    ..RunnerConfig::default()
                },
                TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
            );
            let outcome = runner.run(&strategy, |filter| {
                let text = filter.render();
                let url = format!(
                    "{base}{endpoint}?filter={}&count=1000&attributes=id",
                    urlencode(&text)
                );
                let (status, body) = tokio::task::block_in_place(|| handle.block_on(get(url)));
                if status == 400
                    && body["scimType"] == "invalidFilter"
                    && body["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("cannot be filtered on"))
                {
                    refused_as_unfilterable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(());
                }
                prop_assert_eq!(status, 200, "{} {}: {}", endpoint, text, body);
                let served: BTreeSet<&str> = body["Resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap())
                    .collect();
                let expected: BTreeSet<&str> = docs
                    .iter()
                    .filter(|d| evaluate(&filter, d))
                    .map(|d| d["id"].as_str().unwrap())
                    .collect();
                prop_assert_eq!(
                    body["totalResults"].as_u64().unwrap() as usize,
                    served.len()
                );
                prop_assert_eq!(&served, &expected, "{} {}", endpoint, text);
                Ok(())
            });
            if let Err(failure) = outcome {
                panic!("{endpoint}: {failure}");
            }
        }
        eprintln!(
            "{} filters named attributes served but not filterable",
            refused_as_unfilterable.into_inner()
        );
        fixture.stop().await;
    })
    .await;
}
