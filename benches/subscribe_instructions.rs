//! What one subscribe costs in instructions and cache misses, counted by valgrind rather
//! than timed: the counts do not move with the machine's load, so a change of a few
//! percent shows, where the timed benches swing by up to 2x.
//!
//! Not a criterion bench: it subscribes 6,400 fresh requests (in chunks of 64, each
//! removed again afterwards, as `benches/subscribe.rs` does) into a store of `total`
//! subscriptions, each subscribe in a function of its own, so that callgrind can count
//! just that function:
//!
//! ```text
//! cargo bench --bench subscribe_instructions --no-run   # prints the binary's path
//! valgrind --tool=callgrind --cache-sim=yes --LL=2097152,16,64 \
//!     --toggle-collect='*subscribe_once*' BINARY [store|dispatcher|handler] [TOTAL]
//! ```
//!
//! Divide the `Collected` figures by 6,400: the first is instructions (`Ir`), the last
//! two are misses in a cache of 2 MiB, this machine's L2 (`DLmr`, `DLmw`). `store` (the
//! default) parses, validates and inserts, as `subscribe/parse+validate+insert`;
//! `dispatcher` parses and calls `Dispatcher::subscribe`; `handler` calls
//! `Api::handle`, as `benches/api.rs`. `TOTAL` defaults to 100,000. `cargo bench` runs it
//! natively, once, as a smoke test, with the defaults: the arguments `cargo bench` passes
//! (`--bench`, and whatever follows its `--`) are criterion's, not these.

mod common;

use biot_notifications::api::{AllowEveryone, Api};
use biot_notifications::notifier::DiscardingNotifier;
use biot_notifications::store::InMemoryStore;
use biot_notifications::{Dispatcher, EndpointPolicy};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use common::{scaled, subscribe_direct, subscribe_handled, subscribe_into_store};
use common::{subscribe_request, SubscribeFixture};

/// Fresh subscribes counted, in chunks of 64.
const SUBSCRIBES: u64 = 6_400;

/// Which path a subscribe takes.
#[derive(Clone, Copy)]
enum Path {
    Store,
    Dispatcher,
    Handler,
}

/// Everything a subscribe goes through, built once, off the count.
struct Subscriber {
    store: InMemoryStore,
    policy: EndpointPolicy,
    dispatcher: Dispatcher,
    api: Api,
}

/// A subscribe's input for its path, made ready off the count: the body, or for the
/// handler the request a server would hand over (the handler consumes it, so dropping
/// it counts).
// Boxing the request would put a free of the box into the count; there are only 64
// inputs at a time.
#[allow(clippy::large_enum_variant)]
enum Input {
    Store(Vec<u8>),
    Dispatcher(Vec<u8>),
    Handler(Request<Full<Bytes>>),
}

impl Input {
    fn new(path: Path, body: &[u8]) -> Self {
        match path {
            Path::Store => Input::Store(body.to_vec()),
            Path::Dispatcher => Input::Dispatcher(body.to_vec()),
            Path::Handler => Input::Handler(subscribe_request(body)),
        }
    }
}

impl Subscriber {
    /// One subscribe: the only function callgrind counts.
    #[inline(never)]
    fn subscribe_once(&self, input: Input) {
        match input {
            Input::Store(body) => subscribe_into_store(&self.store, &self.policy, &body),
            Input::Dispatcher(body) => subscribe_direct(&self.dispatcher, &body),
            Input::Handler(request) => subscribe_handled(&self.api, request),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`, and hands every bench what follows its `--`:
    // criterion's filter and options, not ours. Its run is the smoke test, at defaults.
    let ours: &[String] = if args.iter().any(|a| a == "--bench") {
        &[]
    } else {
        &args
    };
    let path = match ours.first().map(String::as_str) {
        None | Some("store") => Path::Store,
        Some("dispatcher") => Path::Dispatcher,
        Some("handler") => Path::Handler,
        Some(other) => panic!("unknown path {other:?}: store, dispatcher or handler"),
    };
    let total = ours.get(1).map_or(scaled(100_000), |t| {
        t.parse().expect("TOTAL is a number of subscriptions")
    });

    let fixture = SubscribeFixture::new(total);
    let dispatcher = Dispatcher::new(fixture.store.clone(), DiscardingNotifier);
    let subscriber = Subscriber {
        store: fixture.store.clone(),
        policy: EndpointPolicy::default(),
        api: Api::builder(dispatcher.clone())
            .authorizer(AllowEveryone)
            .build()
            .unwrap(),
        dispatcher,
    };
    fixture.time(
        SUBSCRIBES,
        |body| Input::new(path, body),
        |input| subscriber.subscribe_once(input),
    );
    println!("{SUBSCRIBES} subscribes into a store of {total}: count them with callgrind (see the source)");
}
