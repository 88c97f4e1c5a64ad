//! Notification bodies as a plugin receives them: any bytes parse or fail cleanly, and
//! what parses serialises and parses back to the same value.
#![no_main]

use biot_notifications::Notification;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(notification) = serde_json::from_slice::<Notification>(data) else {
        return;
    };
    let _ = notification.event_type();
    let _ = notification.template_name();
    let json = serde_json::to_value(&notification).expect("a parsed notification serialises");
    let again: Notification = serde_json::from_value(json.clone()).expect("and parses back");
    assert_eq!(serde_json::to_value(&again).unwrap(), json);
});
