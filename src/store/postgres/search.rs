//! Search, translated to SQL with the evaluator's semantics (see `search::FilterCondition`).

use deadpool_postgres::tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::catalog::{Action, EntityType};
use crate::endpoint::Endpoint;
use crate::search::{Direction, FilterCondition, SearchField, SearchRequest, SortField};

/// A value bound to a query parameter.
type Param = Box<dyn ToSql + Sync + Send>;

/// The `WHERE` clause of a search: conditions (fixed fragments and `$n` placeholders)
/// combined with AND, and the values bound to the placeholders.
#[derive(Default)]
pub(super) struct Filter {
    conditions: Vec<String>,
    pub(super) params: Vec<Param>,
}

impl Filter {
    /// The filter and free text of `request`; `None` when they can match nothing.
    pub(super) fn translate(request: &SearchRequest) -> Option<Filter> {
        let mut filter = Filter::default();
        for (&field, condition) in request.filter() {
            filter.condition(field, condition)?;
        }
        filter.free_text(request.free_text_terms())?;
        Some(filter)
    }

    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect()
    }

    pub(super) fn clause(&self) -> String {
        if self.conditions.is_empty() {
            "TRUE".to_owned()
        } else {
            self.conditions.join(" AND ")
        }
    }

    /// Adds the conditions on one field; `None` when one of them can match nothing.
    fn condition(&mut self, field: SearchField, condition: &FilterCondition) -> Option<()> {
        let column = column(field);
        if let Some(value) = &condition.eq {
            // A value that equals nothing makes the whole search match nothing.
            let key = Keys::parse(field, [value.as_str()]);
            let value = self.bind_first(key)?;
            self.conditions.push(format!("{column} = {value}"));
        }
        if let Some(value) = &condition.not {
            // A value that equals nothing is not equal to everything: no condition.
            if let Some(value) = self.bind_first(Keys::parse(field, [value.as_str()])) {
                self.conditions
                    .push(format!("{column} IS DISTINCT FROM {value}"));
            }
        }
        if let Some(values) = &condition.r#in {
            let values = self.bind_all(Keys::parse(field, values.iter().map(String::as_str)))?;
            self.conditions.push(format!("{column} = ANY({values})"));
        }
        if let Some(values) = &condition.not_in {
            if let Some(values) =
                self.bind_all(Keys::parse(field, values.iter().map(String::as_str)))
            {
                // A null field is in no list.
                self.conditions.push(format!(
                    "({column} IS NULL OR NOT ({column} = ANY({values})))"
                ));
            }
        }
        if let Some(text) = &condition.like {
            // No stored text holds a NUL, and PostgreSQL's text cannot carry one.
            if text.contains('\0') {
                return None;
            }
            let needle = self.bind(text.to_lowercase());
            self.conditions
                .push(format!("strpos({}, {needle}) > 0", folded(field)));
        }
        let wants_null = [condition.is_null, condition.is_not_null.map(|b| !b)];
        for wants_null in wants_null.into_iter().flatten() {
            self.conditions.push(format!(
                "{column} IS {}NULL",
                if wants_null { "" } else { "NOT " }
            ));
        }
        Some(())
    }

    /// Some term appears in some field; `None` when no term can appear anywhere.
    fn free_text<'a>(&mut self, terms: impl Iterator<Item = &'a str>) -> Option<()> {
        let mut any = false;
        let terms: Vec<String> = terms
            .inspect(|_| any = true)
            .filter(|term| !term.contains('\0'))
            .map(str::to_owned)
            .collect();
        if !any {
            return Some(());
        }
        if terms.is_empty() {
            return None;
        }
        let terms = self.bind(terms);
        let fields = [
            SearchField::Id,
            SearchField::EntityTypeName,
            SearchField::ActionName,
            SearchField::Endpoint,
            SearchField::TemplateName,
        ]
        .map(|field| format!("strpos({}, term) > 0", folded(field)))
        .join(" OR ");
        self.conditions.push(format!(
            "EXISTS (SELECT FROM unnest({terms}::text[]) AS terms(term) WHERE {fields})"
        ));
        Some(())
    }

    fn bind_first(&mut self, keys: Keys) -> Option<String> {
        match keys {
            Keys::Ids(ids) => ids.into_iter().next().map(|id| self.bind(id)),
            Keys::Texts(texts) => texts.into_iter().next().map(|text| self.bind(text)),
        }
    }

    fn bind_all(&mut self, keys: Keys) -> Option<String> {
        match keys {
            Keys::Ids(ids) if !ids.is_empty() => Some(self.bind(ids)),
            Keys::Texts(texts) if !texts.is_empty() => Some(self.bind(texts)),
            _ => None,
        }
    }
}

/// Filter values in the form their field's column stores, those that can equal a stored
/// value (the evaluator's canonical keys).
enum Keys {
    Ids(Vec<Uuid>),
    Texts(Vec<String>),
}

impl Keys {
    fn parse<'a>(field: SearchField, values: impl IntoIterator<Item = &'a str>) -> Keys {
        let values = values.into_iter();
        match field {
            SearchField::Id => Keys::Ids(values.filter_map(|v| Uuid::parse_str(v).ok()).collect()),
            field => Keys::Texts(values.filter_map(|v| text_key(field, v)).collect()),
        }
    }
}

/// `value` as the column of `field` stores it; `None` when it equals no stored value.
fn text_key(field: SearchField, value: &str) -> Option<String> {
    if value.contains('\0') {
        return None;
    }
    match field {
        SearchField::Id => Uuid::parse_str(value).ok().map(|id| id.to_string()),
        SearchField::EntityTypeName => EntityType::parse(value).ok().map(|e| e.as_str().to_owned()),
        SearchField::ActionName => Action::parse(value).ok().map(|a| a.as_str().to_owned()),
        SearchField::Endpoint => {
            Some(Endpoint::parse(value).map_or_else(|_| value.to_owned(), Endpoint::into_string))
        }
        SearchField::TemplateName => Some(value.to_owned()),
    }
}

/// The column of a field.
fn column(field: SearchField) -> &'static str {
    match field {
        SearchField::Id => "id",
        SearchField::EntityTypeName => "entity_type_name",
        SearchField::ActionName => "action_name",
        SearchField::Endpoint => "endpoint",
        SearchField::TemplateName => "template_name",
    }
}

/// A field's wire text, lower-cased as Rust's `to_lowercase` would. Names and endpoints
/// are ASCII (endpoints are normalised URLs), so folding ASCII under the "C" collation
/// is exact whatever the database's locale; template names may be any Unicode, so they
/// are folded in Rust when stored.
fn folded(field: SearchField) -> &'static str {
    match field {
        SearchField::Id => "id::text",
        SearchField::EntityTypeName => r#"lower(entity_type_name COLLATE "C")"#,
        SearchField::ActionName => r#"lower(action_name COLLATE "C")"#,
        SearchField::Endpoint => r#"lower(endpoint COLLATE "C")"#,
        SearchField::TemplateName => "template_name_folded",
    }
}

/// The search's order: its sort keys (byte order, as the evaluator compares names),
/// then newest first, then by id.
pub(super) fn order_by(request: &SearchRequest) -> String {
    request
        .sort()
        .iter()
        .map(|key| {
            let column = match key.prop {
                SortField::EntityTypeName => "entity_type_name",
                SortField::ActionName => "action_name",
            };
            let direction = match key.order {
                Direction::Asc => "ASC",
                Direction::Desc => "DESC",
            };
            format!(r#"{column} COLLATE "C" {direction}, "#)
        })
        .chain(["created_at DESC, id ASC".to_owned()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_sql_holds_placeholders_never_values() {
        let hostile = "'; DROP TABLE subscriptions; --";
        let request = SearchRequest::new()
            .with_filter(
                SearchField::Endpoint,
                FilterCondition {
                    eq: Some(hostile.to_owned()),
                    not_in: Some(vec![hostile.to_owned()]),
                    ..FilterCondition::like(hostile)
                },
            )
            .with_filter(SearchField::TemplateName, FilterCondition::not(hostile))
            .with_free_text_search(hostile);
        let filter = Filter::translate(&request).expect("satisfiable");
        let clause = filter.clause();
        assert!(!clause.contains("DROP"), "{clause}");
        assert_eq!(filter.params.len(), 5, "{clause}");
    }

    #[test]
    fn values_that_equal_nothing_match_nothing_or_drop_the_condition() {
        let eq =
            SearchRequest::new().with_filter(SearchField::ActionName, FilterCondition::eq("_read"));
        assert!(Filter::translate(&eq).is_none());
        let in_ = SearchRequest::new().with_filter(SearchField::Id, FilterCondition::is_in(["x"]));
        assert!(Filter::translate(&in_).is_none());
        let not = SearchRequest::new().with_filter(SearchField::Id, FilterCondition::not("x"));
        assert_eq!(
            Filter::translate(&not).expect("satisfiable").clause(),
            "TRUE"
        );
        let nul = SearchRequest::new().with_free_text_search("a\0b");
        assert!(Filter::translate(&nul).is_none());
    }

    #[test]
    fn order_ends_with_newest_first_then_id() {
        use crate::search::SortOrder;
        let request = SearchRequest::new()
            .with_sort(SortOrder::asc(SortField::ActionName))
            .with_sort(SortOrder::desc(SortField::EntityTypeName));
        assert_eq!(
            order_by(&request),
            r#"action_name COLLATE "C" ASC, entity_type_name COLLATE "C" DESC, created_at DESC, id ASC"#
        );
        assert_eq!(order_by(&SearchRequest::new()), "created_at DESC, id ASC");
    }
}
