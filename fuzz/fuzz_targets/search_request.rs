//! Search requests, as JSON bytes and as a raw query string: a value or a clean error,
//! and an accepted request evaluates and round-trips through its query form.
#![no_main]

use biot_notifications::search::SearchRequest;
use biot_notifications::{SubscribeRequest, Subscription};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let from_json = SearchRequest::from_json(data);
    let from_query = std::str::from_utf8(data)
        .ok()
        .map(|query| SearchRequest::from_query(Some(query)));
    for request in [from_json.ok(), from_query.and_then(Result::ok)]
        .into_iter()
        .flatten()
    {
        let again =
            SearchRequest::from_query(Some(&request.to_query())).expect("its own query parses");
        assert_eq!(again, request);
        let subscriptions: Vec<Subscription> =
            ["https://a.example.com/x", "https://b.example.com/y"]
                .iter()
                .map(|e| {
                    Subscription::new(
                        SubscribeRequest::new("patient", "_create", *e)
                            .key()
                            .unwrap(),
                    )
                })
                .collect();
        let page = request.evaluate(&subscriptions);
        assert!(page.data.len() as u64 <= page.total_results);
    }
});
