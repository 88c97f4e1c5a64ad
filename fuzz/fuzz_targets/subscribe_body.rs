//! Subscribe / unsubscribe bodies: any bytes give a request or a clean error, and an
//! accepted request validates without panicking; a valid key round-trips through serde,
//! and its endpoint renders as a request URI.
#![no_main]

use biot_notifications::{EndpointPolicy, SubscribeRequest, SubscriptionKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = SubscribeRequest::from_json(data) else {
        return;
    };
    for policy in [
        EndpointPolicy::default(),
        EndpointPolicy::local_development(),
    ] {
        if let Ok(key) = request.validate(&policy) {
            // The identity is normalised: validating its own wire form gives it back.
            let json = serde_json::to_vec(&key).expect("a key serialises");
            let again: SubscriptionKey = serde_json::from_slice(&json).expect("a key parses back");
            assert_eq!(again, key);
            // Delivery renders the endpoint as a request URI, and must never fail to.
            let _ = key.endpoint().to_uri();
            let wire = SubscribeRequest::from(key.clone());
            assert_eq!(wire.validate(&policy).expect("revalidates"), key);
        }
    }
    let _ = request.key();
});
