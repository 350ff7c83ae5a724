//! Compiles a parsed query against the schema and an org, runs it, and renders its rows.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use super::ast::{CompareOp, Condition, InValues, Literal, Path, Query, SelectItem};
use super::render::{self, ChildWriter, Node, Writer};
use super::SoqlError;
use crate::id::Id;
use crate::org::Org;
use crate::record::{Record, Value};
use crate::schema::{FieldType, ObjectType};

const MAX_OFFSET: u64 = 2_000;

/// A field reached from the queried object, possibly through parent relationships.
#[derive(Debug, Clone)]
struct FieldRef {
    /// Reference-field index on each object along the way, and the object it leads to.
    hops: Vec<(usize, ObjectType, &'static str)>,
    field: usize,
    field_name: &'static str,
    field_type: FieldType,
}

impl FieldRef {
    fn value<'a>(&self, org: &'a Org, record: &'a Record) -> Option<&'a Value> {
        let mut current = record;
        for (index, target, _) in &self.hops {
            let id = current.get(*index).as_id()?;
            current = org.get(*target, id)?;
        }
        Some(current.get(self.field))
    }
}

#[derive(Debug)]
enum Column {
    Field(FieldRef),
    Child(ChildQuery),
}

#[derive(Debug)]
struct ChildQuery {
    relationship: &'static str,
    foreign_key: usize,
    query: CompiledQuery,
}

#[derive(Debug)]
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        field: FieldRef,
        op: CompareOp,
        value: Value,
        pattern: Option<Vec<LikeToken>>,
    },
    InValues {
        field: FieldRef,
        negated: bool,
        values: Vec<Value>,
    },
    InIds {
        field: FieldRef,
        negated: bool,
        ids: HashSet<Id>,
    },
}

#[derive(Debug)]
struct Order {
    field: FieldRef,
    descending: bool,
    nulls_last: bool,
}

/// A query resolved against the schema, ready to run any number of times.
#[derive(Debug)]
pub struct CompiledQuery {
    pub object: ObjectType,
    pub count_only: bool,
    columns: Vec<Column>,
    plan: Vec<Node>,
    filter: Option<Filter>,
    order: Vec<Order>,
    limit: Option<u64>,
    offset: Option<u64>,
}

/// What a run produced: the matching rows (a snapshot) and, for child subqueries, their rows
/// grouped by parent.
pub struct QueryOutput {
    pub total_size: usize,
    /// The matching rows' IDs, in order: the snapshot a cursor pages through.
    pub rows: Vec<Id>,
    children: Vec<HashMap<Id, Vec<Arc<Record>>>>,
}

const CUSTOM_FIELD_HINT: &str = "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.";
const CUSTOM_RELATIONSHIP_HINT: &str = "If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.";
const CUSTOM_OBJECT_HINT: &str = "If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.";

/// Resolves `query` (parsed from `source`) against the org. Semi-join subqueries are run now.
///
/// `version` is the API version the query came in at (its major number): objects and fields
/// newer than it do not exist for it.
pub fn compile(
    org: &Org,
    query: &Query,
    source: &str,
    all_rows: bool,
    version: u32,
) -> Result<CompiledQuery, SoqlError> {
    let object = ObjectType::from_name(&query.from.text)
        .filter(|object| org.has_object(*object) && object.since() <= version)
        .ok_or_else(|| {
            SoqlError::invalid_type_at(
                source,
                query.from.row,
                query.from.column,
                format!(
                    "sObject type '{}' is not supported. {CUSTOM_OBJECT_HINT}",
                    query.from.text
                ),
            )
        })?;
    compile_for(org, object, query, source, all_rows, version)
}

fn compile_for(
    org: &Org,
    object: ObjectType,
    query: &Query,
    source: &str,
    all_rows: bool,
    version: u32,
) -> Result<CompiledQuery, SoqlError> {
    let mut columns = Vec::new();
    let mut count_only = false;
    for item in &query.select {
        match item {
            SelectItem::Count => count_only = true,
            SelectItem::Field(path) => {
                columns.push(Column::Field(resolve(org, object, path, source, version)?))
            }
            SelectItem::Subquery(child) => {
                let relationship = object.schema().child_relationship(&child.from.text).filter(|r| org.has_object(r.child)).ok_or_else(|| {
                    SoqlError::invalid_type_at(
                        source,
                        child.from.row,
                        child.from.column,
                        format!("Didn't understand relationship '{}' in FROM part of query call. {CUSTOM_RELATIONSHIP_HINT}", child.from.text),
                    )
                })?;
                let compiled =
                    compile_for(org, relationship.child, child, source, all_rows, version)?;
                let foreign_key = relationship
                    .child
                    .schema()
                    .field_index(relationship.field)
                    .expect("schema is consistent");
                columns.push(Column::Child(ChildQuery {
                    relationship: relationship.name,
                    foreign_key,
                    query: compiled,
                }));
            }
        }
    }
    if count_only && !columns.is_empty() {
        return Err(SoqlError::plain(
            "MALFORMED_QUERY",
            "COUNT() and fields cannot be selected together",
        ));
    }
    let filter = query
        .filter
        .as_ref()
        .map(|condition| compile_condition(org, object, condition, source, all_rows, version))
        .transpose()?;
    let order = query
        .order_by
        .iter()
        .map(|item| {
            Ok(Order {
                field: resolve(org, object, &item.path, source, version)?,
                descending: item.descending,
                nulls_last: item.nulls_last,
            })
        })
        .collect::<Result<Vec<_>, SoqlError>>()?;
    if let Some(offset) = query.offset {
        if offset > MAX_OFFSET {
            return Err(SoqlError::plain(
                "NUMBER_OUTSIDE_VALID_RANGE",
                format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
            ));
        }
    }
    let mut plan = Vec::new();
    let mut slot = 0;
    for column in &columns {
        match column {
            Column::Field(field) => {
                render::add_field(&mut plan, &field.hops, field.field, field.field_name)
            }
            Column::Child(_) => {
                plan.push(Node::Child { slot });
                slot += 1;
            }
        }
    }
    Ok(CompiledQuery {
        object,
        count_only,
        columns,
        plan,
        filter,
        order,
        limit: query.limit,
        offset: query.offset,
    })
}

fn resolve(
    org: &Org,
    object: ObjectType,
    path: &Path,
    source: &str,
    version: u32,
) -> Result<FieldRef, SoqlError> {
    let mut current = object;
    let mut hops = Vec::new();
    let (field_name, relationships) = path.parts.split_last().expect("a path has a part");
    for part in relationships {
        let schema = current.schema();
        let (index, target) = schema
            .relationship(&part.text)
            .filter(|(index, target)| {
                org.has_object(*target)
                    && target.since() <= version
                    && org.field_visible_at(current, *index, version)
            })
            .ok_or_else(|| {
                SoqlError::invalid_field_at(
                    source,
                    part.row,
                    part.column,
                    format!("Didn't understand relationship '{}' in field path. {CUSTOM_RELATIONSHIP_HINT}", part.text),
                )
            })?;
        let relationship_name = schema.fields[index]
            .relationship
            .expect("reference fields have one");
        hops.push((index, target, relationship_name));
        current = target;
    }
    let schema = current.schema();
    let visible = schema
        .field_index(&field_name.text)
        .filter(|index| org.field_visible_at(current, *index, version));
    let index = visible.ok_or_else(|| {
        SoqlError::invalid_field_at(
            source,
            path.parts[0].row,
            path.parts[0].column,
            format!(
                "No such column '{}' on entity '{}'. {CUSTOM_FIELD_HINT}",
                field_name.text,
                current.name()
            ),
        )
    })?;
    let field = &schema.fields[index];
    Ok(FieldRef {
        hops,
        field: index,
        field_name: field.name,
        field_type: field.field_type,
    })
}

fn compile_condition(
    org: &Org,
    object: ObjectType,
    condition: &Condition,
    source: &str,
    all_rows: bool,
    version: u32,
) -> Result<Filter, SoqlError> {
    let compile_all = |items: &[Condition]| {
        items
            .iter()
            .map(|c| compile_condition(org, object, c, source, all_rows, version))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match condition {
        Condition::And(items) => Filter::And(compile_all(items)?),
        Condition::Or(items) => Filter::Or(compile_all(items)?),
        Condition::Not(inner) => Filter::Not(Box::new(compile_condition(
            org, object, inner, source, all_rows, version,
        )?)),
        Condition::Compare {
            path,
            op,
            value,
            value_at,
        } => {
            let field = resolve(org, object, path, source, version)?;
            let value = coerce(&field, value, source, *value_at)?;
            let pattern = if *op == CompareOp::Like {
                match &value {
                    Value::Text(text) => Some(like_pattern(text)),
                    _ => {
                        return Err(SoqlError::filter_at(
                            source,
                            value_at.0,
                            value_at.1,
                            format!("invalid operator on id field: {}", field.field_name),
                        ))
                    }
                }
            } else {
                None
            };
            Filter::Compare {
                field,
                op: *op,
                value,
                pattern,
            }
        }
        Condition::In {
            path,
            negated,
            values,
            value_at,
        } => {
            let field = resolve(org, object, path, source, version)?;
            match values {
                InValues::List(literals) => Filter::InValues {
                    field: field.clone(),
                    negated: *negated,
                    values: literals
                        .iter()
                        .map(|l| coerce(&field, l, source, *value_at))
                        .collect::<Result<_, _>>()?,
                },
                InValues::Subquery(subquery) => {
                    let compiled = compile(org, subquery, source, all_rows, version)?;
                    let [Column::Field(selected)] = compiled.columns.as_slice() else {
                        return Err(SoqlError::plain(
                            "MALFORMED_QUERY",
                            "Semi join sub-selects must select exactly one Id field",
                        ));
                    };
                    let ids = compiled
                        .matching(org, all_rows)
                        .into_iter()
                        .filter_map(|(_, row)| selected.value(org, row).and_then(Value::as_id))
                        .collect();
                    Filter::InIds {
                        field,
                        negated: *negated,
                        ids,
                    }
                }
            }
        }
    })
}

/// Converts a literal to the field's type, refusing what Salesforce refuses.
fn coerce(
    field: &FieldRef,
    literal: &Literal,
    source: &str,
    at: (usize, usize),
) -> Result<Value, SoqlError> {
    let wrong = |expected: &str, quoted: bool| {
        SoqlError::filter_at(
            source,
            at.0,
            at.1,
            format!(
                "value of filter criterion for field '{}' must be of type {expected} and should {}be enclosed in quotes",
                field.field_name,
                if quoted { "" } else { "not " }
            ),
        )
    };
    if *literal == Literal::Null {
        return Ok(Value::Null);
    }
    match field.field_type {
        FieldType::Boolean => match literal {
            Literal::Bool(b) => Ok(Value::Bool(*b)),
            _ => Err(wrong("boolean", false)),
        },
        FieldType::Int => match literal {
            Literal::Number(n) => Ok(Value::Int(*n as i64)),
            _ => Err(wrong("double", false)),
        },
        FieldType::DateTime => match literal {
            Literal::DateTime(ms) => Ok(Value::DateTime(*ms)),
            _ => Err(wrong("dateTime", false)),
        },
        FieldType::Date => match literal {
            Literal::Date(days) => Ok(Value::Date(*days)),
            _ => Err(wrong("date", false)),
        },
        FieldType::String | FieldType::Email | FieldType::Picklist => match literal {
            Literal::Str(s) => Ok(Value::text(s.as_str())),
            _ => Err(wrong("string", true)),
        },
        FieldType::Id | FieldType::Reference(_) | FieldType::AnyId => match literal {
            Literal::Str(s) => Id::parse(s).map(Value::Id).ok_or_else(|| {
                SoqlError::filter_at(source, at.0, at.1, format!("invalid ID field: {s}"))
            }),
            _ => Err(wrong("id", true)),
        },
    }
}

impl CompiledQuery {
    /// The IDs outside which no row matches the filter (see [`Filter::id_range`]).
    /// An empty range is `x..x` (a `BTreeMap` range that starts after it ends panics).
    fn id_range(&self) -> (Bound<Id>, Bound<Id>) {
        let range = self
            .filter
            .as_ref()
            .map_or((Bound::Unbounded, Bound::Unbounded), Filter::id_range);
        match range {
            (
                Bound::Included(low) | Bound::Excluded(low),
                Bound::Included(high) | Bound::Excluded(high),
            ) if low > high
                || (low == high && !matches!(range, (Bound::Included(_), Bound::Included(_)))) =>
            {
                (Bound::Included(low), Bound::Excluded(low))
            }
            range => range,
        }
    }

    /// The matching rows with their IDs, filtered, ordered, offset and limited, borrowed from
    /// the org. IDs come from the tables' keys, so rows that no filter or order needs to look
    /// at are never touched (a query over 100,000 users stays cache-friendly).
    fn matching<'a>(&self, org: &'a Org, all_rows: bool) -> Vec<(Id, &'a Record)> {
        let table = org.table(self.object);
        let matches = |record: &Record| self.filter.as_ref().is_none_or(|f| f.matches(org, record));
        let mut rows: Vec<(Id, &'a Record)> = if all_rows && !table.deleted.is_empty() {
            let mut rows: Vec<(Id, &Record)> = table
                .live
                .iter()
                .chain(table.deleted.iter())
                .map(|(id, record)| (*id, &**record))
                .filter(|(_, record)| matches(record))
                .collect();
            rows.sort_by_key(|(id, _)| *id);
            rows
        } else {
            table
                .live
                .range(self.id_range())
                .map(|(id, record)| (*id, &**record))
                .filter(|(_, record)| matches(record))
                .collect()
        };
        let offset = self.offset.unwrap_or(0) as usize;
        let wanted = self
            .limit
            .map(|limit| offset.saturating_add(limit as usize));
        match wanted {
            // `ORDER BY ... LIMIT n` of a large table (a fingerprint's latest rows): the first
            // rows picked out, then ordered, as an index would give them, instead of the whole
            // table sorted. The rows come in ID order, so ties are kept in ID order, as the
            // stable sort of the whole table keeps them.
            Some(wanted) if !self.order.is_empty() && wanted < rows.len() => {
                let order = |a: &(Id, &Record), b: &(Id, &Record)| {
                    self.compare(org, a.1, b.1).then(a.0.cmp(&b.0))
                };
                if wanted > 0 {
                    rows.select_nth_unstable_by(wanted - 1, order);
                }
                rows.truncate(wanted);
                rows.sort_by(order);
            }
            _ => self.sort(org, &mut rows, |(_, record)| record),
        }
        rows.drain(..offset.min(rows.len()));
        if let Some(limit) = self.limit {
            rows.truncate(limit as usize);
        }
        rows
    }

    /// Runs the query; `all_rows` includes deleted rows (`queryAll`).
    pub fn run(&self, org: &Org, all_rows: bool) -> QueryOutput {
        let table = org.table(self.object);
        let deleted_rows = all_rows && !table.deleted.is_empty();
        let rows: Vec<Id> = if self.order.is_empty() && !deleted_rows {
            // The common case (a sync reading a whole object in ID order): one pass over the
            // table's keys into one buffer.
            let matches =
                |record: &Record| self.filter.as_ref().is_none_or(|f| f.matches(org, record));
            let offset = self.offset.unwrap_or(0) as usize;
            let limit = self.limit.map_or(usize::MAX, |limit| limit as usize);
            let mut rows = Vec::with_capacity(if self.filter.is_none() {
                table.live.len().min(limit)
            } else {
                0
            });
            rows.extend(
                table
                    .live
                    .range(self.id_range())
                    .filter(|(_, record)| matches(record))
                    .map(|(id, _)| *id)
                    .skip(offset)
                    .take(limit),
            );
            rows
        } else {
            self.matching(org, all_rows)
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        let total_size = rows.len();
        if self.count_only {
            return QueryOutput {
                total_size,
                rows: Vec::new(),
                children: Vec::new(),
            };
        }
        let children = self
            .columns
            .iter()
            .filter_map(|column| match column {
                Column::Child(child) => Some(child.group(org, all_rows)),
                Column::Field(_) => None,
            })
            .collect();
        QueryOutput {
            total_size,
            rows,
            children,
        }
    }

    fn sort<T>(&self, org: &Org, rows: &mut [T], record: impl Fn(&T) -> &Record) {
        if self.order.is_empty() {
            return;
        }
        rows.sort_by(|a, b| self.compare(org, record(a), record(b)));
    }

    /// How two records compare in the query's order.
    fn compare(&self, org: &Org, a: &Record, b: &Record) -> Ordering {
        for order in &self.order {
            let left = order.field.value(org, a).unwrap_or(&Value::Null);
            let right = order.field.value(org, b).unwrap_or(&Value::Null);
            let ordering = match (left.is_null(), right.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) if order.nulls_last => Ordering::Greater,
                (true, false) => Ordering::Less,
                (false, true) if order.nulls_last => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => {
                    let natural = compare(left, right).unwrap_or(Ordering::Equal);
                    if order.descending {
                        natural.reverse()
                    } else {
                        natural
                    }
                }
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }

    /// Writes rows `range` of `output` as a JSON array of Salesforce records.
    pub fn write_records(
        &self,
        org: &Org,
        output: &QueryOutput,
        range: std::ops::Range<usize>,
        version: &str,
        out: &mut Vec<u8>,
    ) {
        let writer = Writer {
            org,
            version,
            children: &output.children,
            child_writer: self,
        };
        out.push(b'[');
        let table = org.table(self.object);
        let records = output.rows[range]
            .iter()
            // A row deleted since the query ran is still in the snapshot, as a deleted row.
            .filter_map(|id| table.live.get(id).or_else(|| table.deleted.get(id)));
        for (i, record) in records.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            writer.record(self.object, &self.plan, record, out);
        }
        out.push(b']');
    }

    fn child(&self, slot: usize) -> &ChildQuery {
        self.columns
            .iter()
            .filter_map(|column| match column {
                Column::Child(child) => Some(child),
                Column::Field(_) => None,
            })
            .nth(slot)
            .expect("the plan's child slots match the columns")
    }
}

impl ChildWriter for CompiledQuery {
    fn relationship(&self, slot: usize) -> &'static str {
        self.child(slot).relationship
    }

    fn write_child_record(
        &self,
        slot: usize,
        org: &Org,
        record: &Record,
        version: &str,
        out: &mut Vec<u8>,
    ) {
        let query = &self.child(slot).query;
        // Child subqueries cannot nest further subqueries in SOQL.
        let writer = Writer {
            org,
            version,
            children: &[],
            child_writer: query,
        };
        writer.record(query.object, &query.plan, record, out);
    }
}

impl ChildQuery {
    fn group(&self, org: &Org, all_rows: bool) -> HashMap<Id, Vec<Arc<Record>>> {
        let mut rows = self.query.run_unlimited(org, all_rows);
        self.query.sort(org, &mut rows, |row| row);
        let mut grouped: HashMap<Id, Vec<Arc<Record>>> = HashMap::new();
        for row in rows {
            if let Some(parent) = row.get(self.foreign_key).as_id() {
                let entry = grouped.entry(parent).or_default();
                if self
                    .query
                    .limit
                    .is_none_or(|limit| (entry.len() as u64) < limit)
                {
                    entry.push(row);
                }
            }
        }
        grouped
    }
}

impl CompiledQuery {
    fn run_unlimited(&self, org: &Org, all_rows: bool) -> Vec<Arc<Record>> {
        let table = org.table(self.object);
        let matches =
            |record: &&Arc<Record>| self.filter.as_ref().is_none_or(|f| f.matches(org, record));
        if all_rows {
            table
                .live
                .values()
                .chain(table.deleted.values())
                .filter(matches)
                .cloned()
                .collect()
        } else {
            table
                .live
                .range(self.id_range())
                .map(|(_, record)| record)
                .filter(matches)
                .cloned()
                .collect()
        }
    }
}

impl Filter {
    /// The IDs outside which no record can match: from comparisons of the record's own `Id`
    /// that the filter requires (alone or in a top-level AND), as Salesforce's index on it
    /// narrows a query to a key range. The filter is still checked on every row in the range.
    fn id_range(&self) -> (Bound<Id>, Bound<Id>) {
        let mut range = (Bound::Unbounded, Bound::Unbounded);
        let items = match self {
            Filter::And(items) => items.as_slice(),
            one => std::slice::from_ref(one),
        };
        for item in items {
            let Filter::Compare {
                field,
                op,
                value: Value::Id(id),
                ..
            } = item
            else {
                continue;
            };
            if !field.hops.is_empty() || field.field_name != "Id" {
                continue;
            }
            let (low, high) = match op {
                CompareOp::Gt => (Bound::Excluded(*id), Bound::Unbounded),
                CompareOp::Ge => (Bound::Included(*id), Bound::Unbounded),
                CompareOp::Lt => (Bound::Unbounded, Bound::Excluded(*id)),
                CompareOp::Le => (Bound::Unbounded, Bound::Included(*id)),
                CompareOp::Eq => (Bound::Included(*id), Bound::Included(*id)),
                _ => continue,
            };
            range = (narrower(range.0, low, false), narrower(range.1, high, true));
        }
        range
    }

    fn matches(&self, org: &Org, record: &Record) -> bool {
        match self {
            Filter::And(items) => items.iter().all(|f| f.matches(org, record)),
            Filter::Or(items) => items.iter().any(|f| f.matches(org, record)),
            Filter::Not(inner) => !inner.matches(org, record),
            Filter::Compare {
                field,
                op,
                value,
                pattern,
            } => {
                let actual = field.value(org, record).unwrap_or(&Value::Null);
                match op {
                    CompareOp::Eq => equals(actual, value),
                    CompareOp::Ne => !equals(actual, value),
                    CompareOp::Like => match (actual, pattern) {
                        (Value::Text(text), Some(pattern)) => like(pattern, text),
                        _ => false,
                    },
                    _ if actual.is_null() || value.is_null() => false,
                    CompareOp::Lt => compare(actual, value) == Some(Ordering::Less),
                    CompareOp::Le => matches!(
                        compare(actual, value),
                        Some(Ordering::Less | Ordering::Equal)
                    ),
                    CompareOp::Gt => compare(actual, value) == Some(Ordering::Greater),
                    CompareOp::Ge => matches!(
                        compare(actual, value),
                        Some(Ordering::Greater | Ordering::Equal)
                    ),
                }
            }
            Filter::InValues {
                field,
                negated,
                values,
            } => {
                let actual = field.value(org, record).unwrap_or(&Value::Null);
                let found = values.iter().any(|v| equals(actual, v));
                if *negated {
                    !found && !actual.is_null()
                } else {
                    found
                }
            }
            Filter::InIds {
                field,
                negated,
                ids,
            } => {
                let actual = field.value(org, record).and_then(Value::as_id);
                match actual {
                    Some(id) => ids.contains(&id) != *negated,
                    None => false,
                }
            }
        }
    }
}

/// SOQL equality: text compares case-insensitively, null equals only null.
fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => {
            x.eq_ignore_ascii_case(y) || (!x.is_ascii() && x.to_lowercase() == y.to_lowercase())
        }
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => a == b,
    }
}

/// Of two lower bounds (`upper`: two upper bounds) on IDs, the one that admits fewer.
fn narrower(a: Bound<Id>, b: Bound<Id>, upper: bool) -> Bound<Id> {
    // Ordered so that the narrower bound has the greater key (lower bounds) or the smaller
    // (upper bounds): at one ID, an excluded bound is the narrower.
    let key = |bound: &Bound<Id>| match bound {
        Bound::Included(id) => Some((*id, upper)),
        Bound::Excluded(id) => Some((*id, !upper)),
        Bound::Unbounded => None,
    };
    match (key(&a), key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) if (x > y) != upper => a,
        _ => b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::DateTime(x), Value::DateTime(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Id(x), Value::Id(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum LikeToken {
    Any,
    One,
    Char(char),
}

fn like_pattern(pattern: &str) -> Vec<LikeToken> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => LikeToken::Any,
            '_' => LikeToken::One,
            '\\' => LikeToken::Char(chars.next().unwrap_or('\\')),
            other => LikeToken::Char(other.to_lowercase().next().unwrap_or(other)),
        });
    }
    tokens
}

/// Case-insensitive LIKE with `%` (any run) and `_` (one character).
fn like(pattern: &[LikeToken], text: &str) -> bool {
    let text: Vec<char> = text
        .chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect();
    let (mut p, mut t) = (0, 0);
    let (mut star, mut star_t) = (None, 0);
    while t < text.len() {
        match pattern.get(p) {
            Some(LikeToken::Any) => {
                star = Some(p);
                star_t = t;
                p += 1;
            }
            Some(LikeToken::One) => {
                p += 1;
                t += 1;
            }
            Some(LikeToken::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some(s) => {
                    p = s + 1;
                    star_t += 1;
                    t = star_t;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|token| *token == LikeToken::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_two_id_bounds_the_narrower_is_kept() {
        let id = |s: &str| Id::parse(s).unwrap();
        let (x, y) = (id("0055g0000000001AAA"), id("0055g0000000002AAA"));
        use Bound::{Excluded, Included, Unbounded};
        // Lower bounds: the greater ID, and at one ID the excluded one.
        assert_eq!(narrower(Included(x), Included(y), false), Included(y));
        assert_eq!(narrower(Excluded(y), Included(x), false), Excluded(y));
        assert_eq!(narrower(Included(x), Excluded(x), false), Excluded(x));
        assert_eq!(narrower(Unbounded, Included(x), false), Included(x));
        assert_eq!(narrower(Excluded(x), Unbounded, false), Excluded(x));
        // Upper bounds: the smaller ID, and at one ID the excluded one.
        assert_eq!(narrower(Included(x), Included(y), true), Included(x));
        assert_eq!(narrower(Included(y), Excluded(x), true), Excluded(x));
        assert_eq!(narrower(Excluded(x), Included(x), true), Excluded(x));
        assert_eq!(narrower(Unbounded, Excluded(y), true), Excluded(y));
        assert_eq!(narrower(Unbounded, Unbounded, true), Unbounded);
    }

    #[test]
    fn like_matches_as_soql_does() {
        let p = like_pattern("%o'brien%");
        assert!(like(&p, "Mary O'Brien"));
        assert!(!like(&p, "Mary Brien"));
        assert!(like(&like_pattern("a_c"), "ABC"));
        assert!(!like(&like_pattern("a_c"), "abbc"));
        assert!(like(&like_pattern("50\\%"), "50%"));
        assert!(!like(&like_pattern("50\\%"), "500"));
    }
}
