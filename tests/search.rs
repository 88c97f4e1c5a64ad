//! BioT "search v2" over subscriptions, through the public API: parsing, every operator
//! on every field, sorting, free text, paging and the response shape.

use biot_notifications::search::{
    Direction, FilterCondition, Page, SearchField, SearchRequest, SearchResponse, SortField,
    SortOrder, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT,
};
use biot_notifications::{BiotError, InvalidSearchRequest, SubscribeRequest, Subscription};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

mod common;
use common::assert_send_sync;

/// The id of fixture subscription `i`: hex letters in it, to test case-insensitivity.
fn id(i: usize) -> Uuid {
    Uuid::from_u128(0xabcd_ef00 + i as u128)
}

fn subscription(
    i: usize,
    created_minute: i64,
    (entity, action, endpoint, template): (&str, &str, &str, Option<&str>),
) -> Subscription {
    let mut request = SubscribeRequest::new(entity, action, endpoint);
    if let Some(template) = template {
        request = request.with_template(template);
    }
    let key = request.key().expect("fixture subscriptions are valid");
    Subscription::from_parts(
        id(i),
        key,
        OffsetDateTime::UNIX_EPOCH + Duration::minutes(created_minute),
    )
}

/// Seven subscriptions, created in index order (so newest first is 6, 5, ..., 0).
fn fixture() -> Vec<Subscription> {
    [
        (
            "patient",
            "_create",
            "https://a.example.com/patients",
            Some("adultPatient"),
        ),
        ("patient", "_delete", "https://a.example.com/patients", None),
        ("device", "_create", "https://b.example.com/devices", None),
        (
            "device",
            "_revokeCertificate",
            "https://b.example.com/certs",
            Some("bloodPressureCuff"),
        ),
        (
            "usage-session",
            "_remotePause",
            "https://c.example.org/Sessions",
            None,
        ),
        (
            "patient",
            "_incomingSms",
            "https://a.example.com/sms",
            Some("childPatient"),
        ),
        (
            "generic-entity",
            "_update",
            "https://b.example.com/generic",
            Some("bloodPressureCuff"),
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, fields)| subscription(i, i as i64, fields))
    .collect()
}

/// The fixture indexes of a page's subscriptions, in order.
fn indexes(page: &Page<Subscription>) -> Vec<usize> {
    page.data
        .iter()
        .map(|s| (s.id().as_u128() - 0xabcd_ef00) as usize)
        .collect()
}

fn search(request: Value) -> Vec<usize> {
    let request = SearchRequest::from_json(request.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{request} should parse: {e}"));
    indexes(&request.evaluate(&fixture()))
}

const ALL: [usize; 7] = [6, 5, 4, 3, 2, 1, 0];

fn all_but(excluded: &[usize]) -> Vec<usize> {
    ALL.into_iter().filter(|i| !excluded.contains(i)).collect()
}

#[test]
fn every_operator_on_every_field_selects_the_expected_subscriptions() {
    let id0 = id(0).to_string();
    let id2 = id(2).to_string();
    let id3_upper = id(3).to_string().to_uppercase();
    let id4_simple = id(4).simple().to_string();
    let cases: Vec<(Value, Vec<usize>)> = vec![
        // id: UUIDs in any case and form; a non-UUID equals nothing.
        (json!({"id": {"eq": id2}}), vec![2]),
        (json!({"id": {"eq": id3_upper}}), vec![3]),
        (json!({"id": {"eq": id4_simple}}), vec![4]),
        (json!({"id": {"eq": "not-a-uuid"}}), vec![]),
        (json!({"id": {"not": id0}}), all_but(&[0])),
        (json!({"id": {"not": "not-a-uuid"}}), ALL.to_vec()),
        (json!({"id": {"in": [id0, id2, "junk"]}}), vec![2, 0]),
        (json!({"id": {"in": ["junk"]}}), vec![]),
        (json!({"id": {"notIn": [id0, "junk"]}}), all_but(&[0])),
        (json!({"id": {"like": "EF03"}}), vec![3]),
        (json!({"id": {"isNull": true}}), vec![]),
        (json!({"id": {"isNull": false}}), ALL.to_vec()),
        (json!({"id": {"isNotNull": true}}), ALL.to_vec()),
        (json!({"id": {"isNotNull": false}}), vec![]),
        // entityTypeName: canonical names; an unknown name equals nothing.
        (json!({"entityTypeName": {"eq": "patient"}}), vec![5, 1, 0]),
        (json!({"entityTypeName": {"eq": "Patient"}}), vec![]),
        (
            json!({"entityTypeName": {"not": "patient"}}),
            vec![6, 4, 3, 2],
        ),
        (json!({"entityTypeName": {"not": "nonsense"}}), ALL.to_vec()),
        (
            json!({"entityTypeName": {"in": ["device", "usage-session"]}}),
            vec![4, 3, 2],
        ),
        (
            json!({"entityTypeName": {"notIn": ["device", "patient", "junk"]}}),
            vec![6, 4],
        ),
        (json!({"entityTypeName": {"like": "SESSION"}}), vec![4]),
        (json!({"entityTypeName": {"like": "-"}}), vec![6, 4]),
        (json!({"entityTypeName": {"isNull": true}}), vec![]),
        (json!({"entityTypeName": {"isNotNull": true}}), ALL.to_vec()),
        // actionName: bare and underscore forms are the same action.
        (json!({"actionName": {"eq": "create"}}), vec![2, 0]),
        (json!({"actionName": {"eq": "_create"}}), vec![2, 0]),
        (json!({"actionName": {"eq": "_read"}}), vec![]),
        (
            json!({"actionName": {"not": "create"}}),
            vec![6, 5, 4, 3, 1],
        ),
        (json!({"actionName": {"not": "_read"}}), ALL.to_vec()),
        (
            json!({"actionName": {"in": ["delete", "_update"]}}),
            vec![6, 1],
        ),
        (
            json!({"actionName": {"notIn": ["create", "remotePause", "bogus"]}}),
            vec![6, 5, 3, 1],
        ),
        (json!({"actionName": {"like": "SMS"}}), vec![5]),
        (json!({"actionName": {"like": "_"}}), ALL.to_vec()),
        (json!({"actionName": {"isNull": false}}), ALL.to_vec()),
        // endpoint: compared normalised when the value is a URL, raw otherwise.
        (
            json!({"endpoint": {"eq": "https://a.example.com/patients"}}),
            vec![1, 0],
        ),
        (
            json!({"endpoint": {"eq": "HTTPS://A.Example.com:443/patients"}}),
            vec![1, 0],
        ),
        (json!({"endpoint": {"eq": "not a url"}}), vec![]),
        (
            json!({"endpoint": {"not": "https://a.example.com:443/patients"}}),
            vec![6, 5, 4, 3, 2],
        ),
        (
            json!({"endpoint": {"in": ["https://B.example.com/certs", "https://c.example.org/Sessions"]}}),
            vec![4, 3],
        ),
        (
            json!({"endpoint": {"in": ["https://c.example.org/sessions"]}}),
            vec![],
        ),
        (
            json!({"endpoint": {"notIn": ["https://b.example.com/devices", "junk"]}}),
            all_but(&[2]),
        ),
        (json!({"endpoint": {"like": "EXAMPLE.ORG"}}), vec![4]),
        (json!({"endpoint": {"like": "sessions"}}), vec![4]),
        (json!({"endpoint": {"like": "%"}}), vec![]),
        (json!({"endpoint": {"isNotNull": true}}), ALL.to_vec()),
        // templateName: exact; null when the subscription has none.
        (json!({"templateName": {"eq": "adultPatient"}}), vec![0]),
        (json!({"templateName": {"eq": "adultpatient"}}), vec![]),
        (
            json!({"templateName": {"not": "adultPatient"}}),
            all_but(&[0]),
        ),
        (
            json!({"templateName": {"in": ["bloodPressureCuff", "childPatient"]}}),
            vec![6, 5, 3],
        ),
        (
            json!({"templateName": {"notIn": ["bloodPressureCuff"]}}),
            vec![5, 4, 2, 1, 0],
        ),
        (json!({"templateName": {"like": "PATIENT"}}), vec![5, 0]),
        (json!({"templateName": {"like": ""}}), vec![6, 5, 3, 0]),
        (json!({"templateName": {"isNull": true}}), vec![4, 2, 1]),
        (json!({"templateName": {"isNull": false}}), vec![6, 5, 3, 0]),
        (
            json!({"templateName": {"isNotNull": true}}),
            vec![6, 5, 3, 0],
        ),
        (json!({"templateName": {"isNotNull": false}}), vec![4, 2, 1]),
        // Conditions on one field and across fields are combined with AND.
        (
            json!({"entityTypeName": {"in": ["patient", "device"], "not": "device"}}),
            vec![5, 1, 0],
        ),
        (
            json!({"templateName": {"isNull": true, "isNotNull": true}}),
            vec![],
        ),
        (
            json!({"entityTypeName": {"eq": "patient"}, "templateName": {"isNotNull": true}}),
            vec![5, 0],
        ),
        (
            json!({"actionName": {"eq": "create"}, "endpoint": {"like": "devices"}, "id": {"eq": id2}}),
            vec![2],
        ),
        (
            json!({"actionName": {"eq": "create"}, "entityTypeName": {"eq": "usage-session"}}),
            vec![],
        ),
        // No condition, or null operands, constrain nothing.
        (json!({}), ALL.to_vec()),
        (json!({"templateName": {}}), ALL.to_vec()),
        (
            json!({"templateName": {"eq": null, "in": null, "isNull": null}}),
            ALL.to_vec(),
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            search(json!({"filter": filter.clone()})),
            expected,
            "filter {filter}"
        );
    }
}

#[test]
fn built_filters_match_like_parsed_ones() {
    let request = SearchRequest::new()
        .with_filter(SearchField::EntityTypeName, FilterCondition::eq("patient"))
        .with_filter(SearchField::TemplateName, FilterCondition::is_not_null());
    assert_eq!(indexes(&request.evaluate(&fixture())), [5, 0]);

    let request = SearchRequest::new()
        .with_filter(
            SearchField::ActionName,
            FilterCondition::is_in(["create", "delete"]),
        )
        .with_filter(
            SearchField::Endpoint,
            FilterCondition::not_in(["https://b.example.com/devices"]),
        );
    assert_eq!(indexes(&request.evaluate(&fixture())), [1, 0]);

    // A second condition on a field replaces the first.
    let request = SearchRequest::new()
        .with_filter(SearchField::TemplateName, FilterCondition::is_null())
        .with_filter(SearchField::TemplateName, FilterCondition::like("cuff"));
    assert_eq!(indexes(&request.evaluate(&fixture())), [6, 3]);

    let fixture = fixture();
    let request = SearchRequest::new().with_filter(
        SearchField::Endpoint,
        FilterCondition::not("https://a.example.com/sms"),
    );
    assert!(!request.matches(&fixture[5]));
    assert!(request.matches(&fixture[4]));
}

#[test]
fn sorting_by_each_field_both_ways_and_hierarchically() {
    let cases: Vec<(Value, Vec<usize>)> = vec![
        // No sort: newest first.
        (json!(null), ALL.to_vec()),
        (json!([]), ALL.to_vec()),
        // Ties within a sort key are newest first.
        (
            json!([{"prop": "entityTypeName", "order": "ASC"}]),
            vec![3, 2, 6, 5, 1, 0, 4],
        ),
        (
            json!([{"prop": "entityTypeName", "order": "DESC"}]),
            vec![4, 5, 1, 0, 6, 3, 2],
        ),
        (
            json!([{"prop": "entityTypeName"}]),
            vec![4, 5, 1, 0, 6, 3, 2],
        ),
        (
            json!([{"prop": "entityTypeName", "order": null}]),
            vec![4, 5, 1, 0, 6, 3, 2],
        ),
        (
            json!([{"prop": "actionName", "order": "ASC"}]),
            vec![2, 0, 1, 5, 4, 3, 6],
        ),
        (
            json!([{"prop": "actionName", "order": "DESC"}]),
            vec![6, 3, 4, 5, 1, 2, 0],
        ),
        (
            json!([{"prop": "entityTypeName", "order": "ASC"}, {"prop": "actionName", "order": "ASC"}]),
            vec![2, 3, 6, 0, 1, 5, 4],
        ),
        (
            json!([{"prop": "entityTypeName", "order": "ASC"}, {"prop": "actionName", "order": "DESC"}]),
            vec![3, 2, 6, 5, 1, 0, 4],
        ),
        (
            json!([{"prop": "actionName", "order": "ASC"}, {"prop": "entityTypeName", "order": "DESC"}]),
            vec![0, 2, 1, 5, 4, 3, 6],
        ),
        (
            json!([{"prop": "actionName", "order": "ASC"}, {"prop": "entityTypeName", "order": "ASC"}]),
            vec![2, 0, 1, 5, 4, 3, 6],
        ),
    ];
    for (sort, expected) in cases {
        assert_eq!(
            search(json!({"sort": sort.clone()})),
            expected,
            "sort {sort}"
        );
    }

    let built = SearchRequest::new()
        .with_sort(SortOrder::asc(SortField::EntityTypeName))
        .with_sort(SortOrder::new(SortField::ActionName, Direction::Asc));
    assert_eq!(indexes(&built.evaluate(&fixture())), [2, 3, 6, 0, 1, 5, 4]);
}

#[test]
fn equal_creation_times_are_ordered_by_id_so_paging_is_stable() {
    let same_time: Vec<Subscription> = [4, 1, 3, 0, 2]
        .into_iter()
        .map(|i| {
            subscription(
                i,
                0,
                (
                    "patient",
                    "_create",
                    &format!("https://p{i}.example.com/"),
                    None,
                ),
            )
        })
        .collect();
    let request = SearchRequest::new().with_limit(2);
    let pages: Vec<Vec<usize>> = (0..3)
        .map(|page| indexes(&request.clone().with_page(page).evaluate(&same_time)))
        .collect();
    assert_eq!(pages, [vec![0, 1], vec![2, 3], vec![4]]);
}

#[test]
fn free_text_terms_are_or_combined_and_anded_with_filters() {
    let cases: Vec<(Value, Vec<usize>)> = vec![
        (json!({"freeTextSearch": "sms"}), vec![5]),
        (json!({"freeTextSearch": "SMS certs"}), vec![5, 3]),
        (json!({"freeTextSearch": "  sms \t certs  "}), vec![5, 3]),
        (json!({"freeTextSearch": "cuff"}), vec![6, 3]),
        (json!({"freeTextSearch": "ef04"}), vec![4]),
        (json!({"freeTextSearch": "usage-session"}), vec![4]),
        (json!({"freeTextSearch": "_delete"}), vec![1]),
        (json!({"freeTextSearch": "nothing-here"}), vec![]),
        (json!({"freeTextSearch": ""}), ALL.to_vec()),
        (json!({"freeTextSearch": "   "}), ALL.to_vec()),
        (json!({"freeTextSearch": null}), ALL.to_vec()),
        (
            json!({"freeTextSearch": "example.com", "filter": {"entityTypeName": {"eq": "device"}}}),
            vec![3, 2],
        ),
        (
            json!({"freeTextSearch": "example.org", "filter": {"entityTypeName": {"eq": "device"}}}),
            vec![],
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(search(request.clone()), expected, "request {request}");
    }
}

#[test]
fn pages_split_the_results_and_report_the_total() {
    let subscriptions = fixture();
    let cases: Vec<(u32, u32, Vec<usize>)> = vec![
        (3, 0, vec![6, 5, 4]),
        (3, 1, vec![3, 2, 1]),
        (3, 2, vec![0]),
        (3, 3, vec![]),
        (7, 0, ALL.to_vec()),
        (7, 1, vec![]),
        (1, 6, vec![0]),
        (1, 7, vec![]),
        (MAX_SEARCH_LIMIT, 0, ALL.to_vec()),
        (MAX_SEARCH_LIMIT, u32::MAX, vec![]),
    ];
    for (limit, page, expected) in cases {
        let request =
            SearchRequest::from_json(json!({"limit": limit, "page": page}).to_string().as_bytes())
                .unwrap();
        let result = request.evaluate(&subscriptions);
        assert_eq!(indexes(&result), expected, "limit {limit} page {page}");
        assert_eq!(result.total_results, 7);
        assert_eq!((result.page, result.limit), (page, limit));
    }

    // Paging applies after filtering and sorting.
    let request = SearchRequest::from_json(
        br#"{"filter": {"entityTypeName": {"notIn": ["usage-session"]}},
             "sort": [{"prop": "actionName", "order": "ASC"}], "limit": 2, "page": 1}"#,
    )
    .unwrap();
    let result = request.evaluate(&subscriptions);
    assert_eq!(indexes(&result), [1, 5]);
    assert_eq!(result.total_results, 6);
}

#[test]
fn paging_through_many_subscriptions_visits_each_once_in_search_order() {
    let events: Vec<_> = biot_notifications::EventType::all().collect();
    let many: Vec<Subscription> = (0..1500)
        .map(|i| {
            let event = events[(i * 7) % events.len()];
            let template = (i % 3 == 0).then(|| format!("template{}", i % 5));
            subscription(
                i,
                (i % 40) as i64,
                (
                    event.entity_type().as_str(),
                    event.action().as_str(),
                    &format!("https://h{}.example.com/", i % 11),
                    template.as_deref(),
                ),
            )
        })
        .collect();
    let request = SearchRequest::new()
        .with_filter(
            SearchField::Endpoint,
            FilterCondition::not("https://h0.example.com/"),
        )
        .with_sort(SortOrder::desc(SortField::EntityTypeName));
    let mut expected: Vec<&Subscription> = many.iter().filter(|s| request.matches(s)).collect();
    expected.sort_by(|a, b| request.compare(a, b));

    for limit in [1, 7, 100, 1000] {
        let mut seen = Vec::new();
        let mut page = 0;
        loop {
            let result = request
                .clone()
                .with_limit(limit)
                .with_page(page)
                .evaluate(&many);
            assert_eq!(result.total_results, expected.len() as u64);
            if result.data.is_empty() {
                break;
            }
            seen.extend(result.data);
            page += 1;
        }
        let expected_ids: Vec<Uuid> = expected.iter().map(|s| s.id()).collect();
        let seen_ids: Vec<Uuid> = seen.iter().map(Subscription::id).collect();
        assert_eq!(seen_ids, expected_ids, "limit {limit}");
    }
}

#[test]
fn limit_and_page_bounds() {
    let default = SearchRequest::from_json(b"{}").unwrap();
    assert_eq!((default.limit(), default.page()), (DEFAULT_SEARCH_LIMIT, 0));
    assert_eq!(default, SearchRequest::default());
    assert_eq!(
        SearchRequest::from_json(br#"{"limit": 1}"#)
            .unwrap()
            .limit(),
        1
    );
    assert_eq!(
        SearchRequest::from_json(br#"{"limit": 1000}"#)
            .unwrap()
            .limit(),
        MAX_SEARCH_LIMIT
    );
    assert_eq!(
        SearchRequest::from_json(br#"{"limit": null, "page": null}"#).unwrap(),
        default
    );
    assert_eq!(
        SearchRequest::from_json(br#"{"page": 4294967295}"#)
            .unwrap()
            .page(),
        u32::MAX
    );

    // Built requests are clamped, and the offset never overflows.
    assert_eq!(SearchRequest::new().with_limit(0).limit(), 1);
    assert_eq!(
        SearchRequest::new().with_limit(5000).limit(),
        MAX_SEARCH_LIMIT
    );
    let far = SearchRequest::new()
        .with_limit(u32::MAX)
        .with_page(u32::MAX);
    assert_eq!(
        far.offset(),
        u64::from(u32::MAX) * u64::from(MAX_SEARCH_LIMIT)
    );
    assert!(far.evaluate(&fixture()).data.is_empty());
}

#[test]
fn from_query_decodes_the_search_request_parameter() {
    let default = SearchRequest::default();
    for query in [
        None,
        Some(""),
        Some("other=1"),
        Some("searchRequest="),
        Some("searchRequest=%20+"),
    ] {
        assert_eq!(
            SearchRequest::from_query(query).unwrap(),
            default,
            "{query:?}"
        );
    }

    let percent = "searchRequest=%7B%22filter%22%3A%20%7B%22actionName%22%3A%20%7B%22eq%22%3A%20%22create%22%7D%7D%2C%20%22freeTextSearch%22%3A%20%22a.example%20b.example%22%7D";
    let plus = "searchRequest={\"filter\":+{\"actionName\":+{\"eq\":+\"create\"}},+\"freeTextSearch\":+\"a.example+b.example\"}";
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("foo", "bar")
        .append_pair(
            "searchRequest",
            r#"{"filter": {"actionName": {"eq": "create"}}, "freeTextSearch": "a.example b.example"}"#,
        )
        .finish();
    let expected = SearchRequest::new()
        .with_filter(SearchField::ActionName, FilterCondition::eq("create"))
        .with_free_text_search("a.example b.example");
    let prefixed = format!("?{percent}");
    for query in [percent, plus, encoded.as_str(), prefixed.as_str()] {
        let request =
            SearchRequest::from_query(Some(query)).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(request, expected, "{query}");
        assert_eq!(indexes(&request.evaluate(&fixture())), [2, 0]);
    }

    // A client's query round-trips.
    let request = expected
        .clone()
        .with_sort(SortOrder::asc(SortField::ActionName))
        .with_limit(5)
        .with_page(3);
    assert_eq!(
        SearchRequest::from_query(Some(&request.to_query())).unwrap(),
        request
    );

    let twice = format!("{percent}&{percent}");
    let err = SearchRequest::from_query(Some(&twice)).unwrap_err();
    assert_eq!(err.code(), "INVALID_SEARCH_REQUEST");
    assert!(err.to_string().contains("more than once"), "{err}");
}

/// Bad requests, each with a phrase its error must contain.
const BAD_REQUESTS: &[(&str, &str)] = &[
    ("{", "JSON"),
    ("", "JSON"),
    ("{\"filter\": {}} trailing", "JSON"),
    ("[]", "must be a JSON object, not an array"),
    ("\"just a string\"", "must be a JSON object"),
    ("null", "must be a JSON object, not null"),
    (
        r#"{"filters": {}}"#,
        "`filters` is not a search request attribute",
    ),
    (r#"{"filter": []}"#, "`filter` must be an object"),
    (
        r#"{"filter": {"status": {"eq": "x"}}}"#,
        "id, entityTypeName, actionName, endpoint, templateName",
    ),
    (
        r#"{"filter": {"EntityTypeName": {"eq": "patient"}}}"#,
        "`EntityTypeName` is not a filterable field",
    ),
    (
        r#"{"filter": {"actionName": "create"}}"#,
        "must be an object of conditions",
    ),
    (
        r#"{"filter": {"actionName": null}}"#,
        "must be an object of conditions",
    ),
    (
        r#"{"filter": {"actionName": {"equals": "create"}}}"#,
        "`equals` on `actionName` is not a filter operator",
    ),
    (
        r#"{"filter": {"id": {"lt": 3}}}"#,
        "`lt` on `id` is not supported",
    ),
    (
        r#"{"filter": {"id": {"lte": 3}}}"#,
        "`lte` on `id` is not supported",
    ),
    (
        r#"{"filter": {"id": {"gt": 3}}}"#,
        "`gt` on `id` is not supported",
    ),
    (
        r#"{"filter": {"id": {"gte": 3}}}"#,
        "`gte` on `id` is not supported",
    ),
    (
        r#"{"filter": {"templateName": {"from": "2024-01-01"}}}"#,
        "`from` on `templateName` is not supported",
    ),
    (
        r#"{"filter": {"templateName": {"to": "2024-01-01"}}}"#,
        "`to` on `templateName` is not supported",
    ),
    (
        r#"{"filter": {"templateName": {"filter": {}}}}"#,
        "`filter` on `templateName` is not supported",
    ),
    (
        r#"{"filter": {"$OR": {"filter": {"id": {"eq": "x"}}}}}"#,
        "`$OR` is not supported",
    ),
    (
        r#"{"filter": {"$AND": {"filter": {}}}}"#,
        "`$AND` is not supported",
    ),
    (
        r#"{"filter": {"$NOT": {"filter": {}}}}"#,
        "`$NOT` is not supported",
    ),
    (
        r#"{"filter": {"id": {"$or": []}}}"#,
        "`$or` is not supported",
    ),
    (
        r#"{"filter": {"actionName": {"eq": 5}}}"#,
        "`eq` on `actionName` must be a string",
    ),
    (
        r#"{"filter": {"actionName": {"not": true}}}"#,
        "`not` on `actionName` must be a string, not a boolean",
    ),
    (
        r#"{"filter": {"endpoint": {"eq": {"url": "x"}}}}"#,
        "must be a string, not an object",
    ),
    (
        r#"{"filter": {"endpoint": {"like": ["x"]}}}"#,
        "`like` on `endpoint` must be a string, not an array",
    ),
    (
        r#"{"filter": {"actionName": {"in": "create"}}}"#,
        "`in` on `actionName` must be an array of strings",
    ),
    (
        r#"{"filter": {"actionName": {"notIn": ["create", 1]}}}"#,
        "element 1 is a number",
    ),
    (
        r#"{"filter": {"templateName": {"isNull": "yes"}}}"#,
        "`isNull` on `templateName` must be a boolean",
    ),
    (
        r#"{"filter": {"templateName": {"isNotNull": 1}}}"#,
        "`isNotNull` on `templateName` must be a boolean",
    ),
    (
        r#"{"sort": {"prop": "actionName"}}"#,
        "`sort` must be an array",
    ),
    (r#"{"sort": ["actionName"]}"#, "`sort[0]` must be an object"),
    (
        r#"{"sort": [{"prop": "endpoint"}]}"#,
        "sortable properties are: entityTypeName, actionName",
    ),
    (
        r#"{"sort": [{"prop": "creationTime", "order": "DESC"}]}"#,
        "`creationTime` is not a sortable property",
    ),
    (
        r#"{"sort": [{"prop": "actionName", "order": "UP"}]}"#,
        "sort directions are: ASC, DESC",
    ),
    (
        r#"{"sort": [{"prop": "actionName", "order": "asc"}]}"#,
        "`asc` is not a sort direction",
    ),
    (
        r#"{"sort": [{"prop": "actionName", "order": 1}]}"#,
        "the `order` of `sort[0]` must be a string",
    ),
    (
        r#"{"sort": [{"prop": "actionName"}, {"order": "ASC"}]}"#,
        "the `prop` of `sort[1]` is mandatory",
    ),
    (
        r#"{"sort": [{"prop": "actionName", "direction": "ASC"}]}"#,
        "`direction` is not an attribute of `sort[0]`",
    ),
    (
        r#"{"limit": 0}"#,
        "`limit` must be an integer from 1 to 1000, not 0",
    ),
    (
        r#"{"limit": 1001}"#,
        "`limit` must be an integer from 1 to 1000, not 1001",
    ),
    (r#"{"limit": -1}"#, "not -1"),
    (r#"{"limit": 2.5}"#, "not 2.5"),
    (r#"{"limit": 10.0}"#, "`limit` must be an integer"),
    (r#"{"limit": "10"}"#, "not a string"),
    (
        r#"{"limit": 99999999999999999999}"#,
        "`limit` must be an integer",
    ),
    (
        r#"{"page": -1}"#,
        "`page` must be an integer from 0 to 4294967295, not -1",
    ),
    (r#"{"page": 1.5}"#, "`page` must be an integer"),
    (r#"{"page": 4294967296}"#, "`page` must be an integer"),
    (
        r#"{"freeTextSearch": 5}"#,
        "`freeTextSearch` must be a string, not a number",
    ),
];

#[test]
fn bad_search_requests_are_invalid_search_request_errors() {
    for &(json, phrase) in BAD_REQUESTS {
        let err = SearchRequest::from_json(json.as_bytes()).expect_err(json);
        // The type says it: the search layer's own error.
        let _: &InvalidSearchRequest = &err;
        assert_eq!(err.code(), "INVALID_SEARCH_REQUEST", "{json}");
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{json}");
        assert!(
            err.to_string().contains(phrase),
            "{json}: `{err}` lacks `{phrase}`"
        );
        assert!(err.details().contains_key("reason"), "{json}");

        // The same through the query string, and through serde.
        if !json.is_empty() {
            let query = format!(
                "searchRequest={}",
                url::form_urlencoded::byte_serialize(json.as_bytes()).collect::<String>()
            );
            let from_query = SearchRequest::from_query(Some(&query)).expect_err(&query);
            assert_eq!(from_query.to_string(), err.to_string(), "{json}");
            assert!(
                serde_json::from_str::<SearchRequest>(json).is_err(),
                "{json}"
            );
        }
    }
}

#[test]
fn errors_echo_bounded_input() {
    let long = "x".repeat(100_000);
    for json in [
        json!({"filter": {long.clone(): {"eq": "x"}}}),
        json!({"filter": {"id": {long.clone(): "x"}}}),
        json!({"sort": [{"prop": long.clone()}]}),
        json!({long.clone(): 1}),
    ] {
        let err = SearchRequest::from_json(json.to_string().as_bytes()).unwrap_err();
        assert!(
            err.to_string().len() < 1000,
            "{} bytes",
            err.to_string().len()
        );
    }
}

#[test]
fn serde_goes_through_the_same_validation() {
    let json = r#"{"filter": {"actionName": {"eq": "create"}}, "sort": [{"prop": "actionName"}], "limit": 5}"#;
    let via_serde: SearchRequest = serde_json::from_str(json).unwrap();
    assert_eq!(
        via_serde,
        SearchRequest::from_json(json.as_bytes()).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&via_serde).unwrap(),
        json!({"filter": {"actionName": {"eq": "create"}}, "sort": [{"prop": "actionName", "order": "DESC"}], "limit": 5, "page": 0}),
    );
    let again: SearchRequest =
        serde_json::from_value(serde_json::to_value(&via_serde).unwrap()).unwrap();
    assert_eq!(again, via_serde);
    assert!(serde_json::from_str::<FilterCondition>(r#"{"gt": 1}"#).is_err());
    assert!(serde_json::from_str::<SortOrder>(r#"{"prop": "id"}"#).is_err());
}

#[test]
fn the_response_has_biot_search_shape() {
    let request = SearchRequest::from_json(
        br#"{"filter": {"entityTypeName": {"eq": "patient"}, "actionName": {"eq": null, "not": "delete"}},
             "sort": [{"prop": "actionName"}], "freeTextSearch": "example", "limit": 1, "page": 1}"#,
    )
    .unwrap();
    let response = SearchResponse::new(&request, request.evaluate(&fixture()));
    let body = serde_json::to_value(&response).unwrap();

    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["data", "metadata"]);
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["id"], id(0).to_string());
    assert_eq!(body["data"][0]["actionName"], "_create");
    assert_eq!(
        body["metadata"],
        json!({
            "sort": [{"prop": "actionName", "order": "DESC"}],
            "filter": {"entityTypeName": {"eq": "patient"}, "actionName": {"not": "delete"}},
            "page": {"totalResults": 2, "page": 1, "limit": 1},
            "freeTextSearch": "example",
        })
    );

    // Clients read it back.
    let parsed: SearchResponse = serde_json::from_value(body).unwrap();
    assert_eq!(parsed, response);
    let page = parsed.into_page();
    assert_eq!((page.total_results, page.page, page.limit), (2, 1, 1));

    // With nothing asked, the metadata still has sort, filter and page.
    let request = SearchRequest::default();
    let body =
        serde_json::to_value(SearchResponse::new(&request, request.evaluate(&Vec::new()))).unwrap();
    assert_eq!(
        body,
        json!({"data": [], "metadata": {"sort": [], "filter": {}, "page": {"totalResults": 0, "page": 0, "limit": 100}}})
    );
}

#[test]
fn public_search_types_are_send_and_sync() {
    assert_send_sync::<SearchRequest>();
    assert_send_sync::<SearchResponse>();
    assert_send_sync::<Page<Subscription>>();
    assert_send_sync::<FilterCondition>();
}
