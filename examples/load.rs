//! The delivery engine under load, beside a plugin that hangs: does the healthy plugin
//! notice? Everything on loopback, in one binary, bounded in count and time.
//!
//! ```sh
//! cargo run --release --example load --features engine,http-notifier
//! cargo run --release --example load --features engine,http-notifier -- --rate 2000 --seconds 5
//! ```
//!
//! Two scenarios, each in a child process of this binary (peak memory is per process),
//! one after the other:
//!
//! - **A**: one healthy plugin, answering `200` at once.
//! - **B**: the same healthy plugin and a hanging one, which accepts the connection,
//!   reads the request and never answers, both subscribed to the same pair.
//!
//! Each child starts its plugins (on a runtime of their own), a dispatcher with
//! `HttpNotifier` (`EndpointPolicy::local_development()`, default timeouts: 10 s per
//! request) and a `DeliveryEngine` with its defaults, then hands it `--rate` events a
//! second (default 1,000) for `--seconds` (default 10), paced by the millisecond, and
//! shuts it down with `--shutdown-deadline` (default 5 s). It measures:
//!
//! - the healthy plugin's receive latency: when it got the notification, minus when the
//!   event was handed to `try_submit` (carried in the entity as `sentAtNs`);
//! - each `try_submit` call's own duration (the hand-off);
//! - peak memory (`VmHWM` from `/proc/self/status`, and the largest `VmRSS` sampled every
//!   10 ms) and the most file descriptors and sockets open at once (`/proc/self/fd`,
//!   sampled likewise), plugins' included: they share the process;
//! - the engine's `ShutdownReport`, whose outcomes must add up to what was matched.
//!
//! The parent prints both side by side and checks them against the targets: B's healthy
//! p99 within 2x of A's plus 5 ms, B's peak memory within 64 MiB of A's, B's open
//! sockets within 300 of A's, the hand-off's p99 under 50 ms, and every delivery
//! accounted for. It exits with status 1 when a check fails.
//!
//! Linux only (it reads `/proc/self`). `--scenario a|b` runs one scenario in this
//! process and prints its figures as JSON.

use std::net::SocketAddr;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use biot_notifications::delivery::{DeliveryEngine, ShutdownReport, SubmitError};
use biot_notifications::notification::{Event, Notification};
use biot_notifications::HttpNotifier;
use biot_notifications::{
    Action, Dispatcher, EndpointPolicy, EntityType, EventType, InMemoryStore, SubscribeRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::time::MissedTickBehavior;

/// The targets of issue #16, checked by the parent.
const P99_RATIO_LIMIT: f64 = 2.0;
const P99_SLACK_MS: f64 = 5.0;
const MEMORY_DELTA_LIMIT_MIB: f64 = 64.0;
const SOCKETS_DELTA_LIMIT: i64 = 300;
const HAND_OFF_P99_LIMIT_MS: f64 = 50.0;

/// How often memory and descriptors are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// The healthy plugin alone.
    HealthyOnly,
    /// The healthy plugin beside a hanging one.
    WithHanging,
}

impl Scenario {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "a" => Ok(Scenario::HealthyOnly),
            "b" => Ok(Scenario::WithHanging),
            other => Err(format!("--scenario {other}: expected `a` or `b`")),
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Scenario::HealthyOnly => "a",
            Scenario::WithHanging => "b",
        }
    }
}

struct Options {
    rate: u64,
    seconds: u64,
    shutdown_deadline: Duration,
    scenario: Option<Scenario>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        rate: 1_000,
        seconds: 10,
        shutdown_deadline: Duration::from_secs(5),
        scenario: None,
    };
    let mut args = std::env::args().skip(1);
    let number = |flag: &str, value: Option<String>| -> Result<u64, String> {
        let value = value.ok_or(format!("{flag} needs a number"))?;
        match value.parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{flag} {value}: expected a whole number above 0")),
        }
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // Bounded, so a typo cannot start an hour-long run.
            "--rate" => options.rate = number("--rate", args.next())?.min(100_000),
            "--seconds" => options.seconds = number("--seconds", args.next())?.min(120),
            "--shutdown-deadline" => {
                let seconds = number("--shutdown-deadline", args.next())?.min(60);
                options.shutdown_deadline = Duration::from_secs(seconds);
            }
            "--scenario" => {
                options.scenario = Some(Scenario::parse(
                    &args.next().ok_or("--scenario needs `a` or `b`")?,
                )?);
            }
            "--help" | "-h" => {
                return Err(
                    "usage: load [--rate EVENTS_PER_SECOND] [--seconds N] [--shutdown-deadline SECONDS] [--scenario a|b]"
                        .to_owned(),
                )
            }
            other => return Err(format!("unknown argument `{other}`; see --help")),
        }
    }
    Ok(options)
}

/// What one scenario measured; a child prints it as one JSON line.
#[derive(Debug, Serialize, Deserialize)]
struct Figures {
    scenario: String,
    submitted: u64,
    accepted: u64,
    overloaded: u64,
    /// How long submitting took, against the `seconds` asked for.
    submit_seconds: f64,
    healthy_received: usize,
    healthy_latency_ms: Percentiles,
    hand_off_ms: Percentiles,
    hanging_connections: usize,
    peak_rss_mib: f64,
    vm_hwm_mib: f64,
    peak_fds: usize,
    peak_sockets: usize,
    report: Outcomes,
}

/// The parts of the engine's `ShutdownReport` the table shows.
#[derive(Debug, Serialize, Deserialize)]
struct Outcomes {
    drained: bool,
    elapsed_seconds: f64,
    matched: u64,
    delivered: u64,
    failed: u64,
    shed: u64,
    abandoned: u64,
    events_failed: u64,
    events_abandoned: u64,
    timeout: u64,
    shed_backlog_full: u64,
    shed_circuit_open: u64,
}

impl From<ShutdownReport> for Outcomes {
    fn from(report: ShutdownReport) -> Self {
        Outcomes {
            drained: report.drained,
            elapsed_seconds: report.elapsed.as_secs_f64(),
            matched: report.matched,
            delivered: report.delivered,
            failed: report.failed,
            shed: report.shed,
            abandoned: report.abandoned,
            events_failed: report.events_failed,
            events_abandoned: report.events_abandoned,
            timeout: report.outcomes.timeout,
            shed_backlog_full: report.outcomes.shed_backlog_full,
            shed_circuit_open: report.outcomes.shed_circuit_open,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (milliseconds).
    fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Percentiles {
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        }
    }
}

// --- The plugins ---------------------------------------------------------------------

/// The clock hand-off and receive times are read from: one process, one `Instant`.
fn clock_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    clock_origin().elapsed().as_nanos() as u64
}

/// The healthy plugin: parses each notification, records how long it took to arrive,
/// answers `200`.
#[derive(Default)]
struct HealthyPlugin {
    latencies_ms: Mutex<Vec<f64>>,
}

async fn receive(State(plugin): State<Arc<HealthyPlugin>>, body: Bytes) -> StatusCode {
    let received = now_ns();
    let Ok(notification) = serde_json::from_slice::<Notification>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(sent) = notification.data.entity["sentAtNs"].as_u64() else {
        return StatusCode::BAD_REQUEST;
    };
    let latency_ms = received.saturating_sub(sent) as f64 / 1e6;
    plugin.latencies_ms.lock().unwrap().push(latency_ms);
    StatusCode::OK
}

async fn start_healthy(plugin: Arc<HealthyPlugin>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(plugin);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(address)
}

/// The hanging plugin: accepts, reads whatever comes, never answers; the connection
/// stays open until the client gives up. Counts the connections it accepted.
async fn start_hanging(connections: Arc<AtomicUsize>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut scratch = [0u8; 4096];
                while matches!(stream.read(&mut scratch).await, Ok(n) if n > 0) {}
            });
        }
    });
    Ok(address)
}

// --- Memory and descriptors ------------------------------------------------------------

#[derive(Debug, Default)]
struct ProcessPeaks {
    rss_kib: u64,
    fds: usize,
    sockets: usize,
}

/// A `kB` line of `/proc/self/status`, e.g. `VmRSS`.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open descriptors, and how many of them are sockets.
fn open_descriptors() -> (usize, usize) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return (0, 0);
    };
    let mut fds = 0;
    let mut sockets = 0;
    for entry in entries.flatten() {
        fds += 1;
        if std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        {
            sockets += 1;
        }
    }
    (fds, sockets)
}

/// Samples memory and descriptors on a thread of its own until `stop` is set.
fn sample_process(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<ProcessPeaks> {
    std::thread::spawn(move || {
        let mut peaks = ProcessPeaks::default();
        loop {
            let (fds, sockets) = open_descriptors();
            peaks.rss_kib = peaks.rss_kib.max(status_kib("VmRSS"));
            peaks.fds = peaks.fds.max(fds);
            peaks.sockets = peaks.sockets.max(sockets);
            if stop.load(Ordering::Relaxed) {
                return peaks;
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
    })
}

// --- One scenario ------------------------------------------------------------------------

fn run_scenario(
    options: &Options,
    scenario: Scenario,
) -> Result<Figures, Box<dyn std::error::Error>> {
    clock_origin();
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = sample_process(Arc::clone(&stop_sampling));

    // The plugins run on a runtime of their own, as they would in processes of their own.
    let plugins = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("plugins")
        .enable_all()
        .build()?;
    let healthy = Arc::new(HealthyPlugin::default());
    let hanging_connections = Arc::new(AtomicUsize::new(0));
    let healthy_address = plugins.block_on(start_healthy(Arc::clone(&healthy)))?;
    let hanging_address = match scenario {
        Scenario::HealthyOnly => None,
        Scenario::WithHanging => {
            Some(plugins.block_on(start_hanging(Arc::clone(&hanging_connections)))?)
        }
    };

    // The host: the default multi-threaded runtime, as `#[tokio::main]` builds it.
    let host = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (submitted, accepted, overloaded, submit_seconds, hand_off_ms, report) =
        host.block_on(async {
            // The policy is given once, to the notifier; the dispatcher takes it from there.
            let notifier = HttpNotifier::builder()
                .endpoint_policy(EndpointPolicy::local_development())
                .build()?;
            let dispatcher = Dispatcher::builder(InMemoryStore::new(), notifier).build()?;
            let endpoints = std::iter::once(healthy_address).chain(hanging_address);
            for address in endpoints {
                let endpoint = format!("http://{address}/hook");
                dispatcher
                    .subscribe(&SubscribeRequest::new("patient", "_create", &endpoint))
                    .await?;
            }
            let engine = DeliveryEngine::builder(dispatcher).build()?;
            let pair = EventType::new(EntityType::Patient, Action::Create)?;

            let total = options.rate * options.seconds;
            let mut hand_off_ms = Vec::with_capacity(total as usize);
            let (mut submitted, mut accepted, mut overloaded) = (0u64, 0u64, 0u64);
            let started = Instant::now();
            let mut ticks = tokio::time::interval(Duration::from_millis(1));
            ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
            while submitted < total {
                ticks.tick().await;
                // Whatever is due by now: a late tick is made up in a burst.
                let due =
                    ((started.elapsed().as_secs_f64() * options.rate as f64) as u64).min(total);
                while submitted < due {
                    let event = Event::new(
                        pair,
                        json!({"_id": format!("p-{submitted}"), "sentAtNs": now_ns()}),
                    );
                    let before = Instant::now();
                    let result = engine.try_submit(event);
                    hand_off_ms.push(before.elapsed().as_secs_f64() * 1000.0);
                    submitted += 1;
                    match result {
                        Ok(_) => accepted += 1,
                        Err(SubmitError::Overloaded { .. }) => overloaded += 1,
                        Err(other) => return Err(other.into()),
                    }
                }
            }
            let submit_seconds = started.elapsed().as_secs_f64();
            let report = engine.shutdown(options.shutdown_deadline).await;
            Ok::<_, Box<dyn std::error::Error>>((
                submitted,
                accepted,
                overloaded,
                submit_seconds,
                hand_off_ms,
                report,
            ))
        })?;
    // Peaks include the shutdown; the plugins are still up.
    stop_sampling.store(true, Ordering::Relaxed);
    let peaks = sampler.join().map_err(|_| "the sampler panicked")?;
    let vm_hwm_kib = status_kib("VmHWM");
    drop(host);
    drop(plugins);

    let latencies = std::mem::take(&mut *healthy.latencies_ms.lock().unwrap());
    Ok(Figures {
        scenario: scenario.flag().to_owned(),
        submitted,
        accepted,
        overloaded,
        submit_seconds,
        healthy_received: latencies.len(),
        healthy_latency_ms: Percentiles::of(latencies),
        hand_off_ms: Percentiles::of(hand_off_ms),
        hanging_connections: hanging_connections.load(Ordering::Relaxed),
        peak_rss_mib: peaks.rss_kib as f64 / 1024.0,
        vm_hwm_mib: vm_hwm_kib as f64 / 1024.0,
        peak_fds: peaks.fds,
        peak_sockets: peaks.sockets,
        report: report.into(),
    })
}

// --- The parent: both scenarios, the table, the checks ---------------------------------

/// Runs `scenario` in a child process of this binary and reads its figures.
fn run_child(options: &Options, scenario: Scenario) -> Result<Figures, Box<dyn std::error::Error>> {
    eprintln!(
        "scenario {}: {} events/s for {} s ...",
        scenario.flag(),
        options.rate,
        options.seconds
    );
    let output = Command::new(std::env::current_exe()?)
        .args(["--scenario", scenario.flag()])
        .args(["--rate", &options.rate.to_string()])
        .args(["--seconds", &options.seconds.to_string()])
        .args([
            "--shutdown-deadline",
            &options.shutdown_deadline.as_secs().to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("scenario {} failed: {}", scenario.flag(), output.status).into());
    }
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout
        .lines()
        .last()
        .ok_or("the child printed no figures")?;
    Ok(serde_json::from_str(line)?)
}

/// One line of the table: `figure` of A, then of B.
fn row(what: &str, a: &Figures, b: &Figures, figure: impl Fn(&Figures) -> String) {
    println!("| {what:<49} | {:>29} | {:>29} |", figure(a), figure(b));
}

fn print_table(a: &Figures, b: &Figures) {
    println!(
        "| {:<49} | {:>29} | {:>29} |",
        "", "A: healthy only", "B: healthy + hanging"
    );
    println!("|{:-<51}|{:-<31}|{:-<31}|", "", "", "");
    row("events submitted / accepted / overloaded", a, b, |f| {
        format!("{} / {} / {}", f.submitted, f.accepted, f.overloaded)
    });
    row("submitting took (s)", a, b, |f| {
        format!("{:.2}", f.submit_seconds)
    });
    row("healthy latency p50 / p99 / max (ms)", a, b, |f| {
        let p = &f.healthy_latency_ms;
        format!("{:.2} / {:.2} / {:.2}", p.p50, p.p99, p.max)
    });
    row("hand-off try_submit p50 / p99 / max (ms)", a, b, |f| {
        let p = &f.hand_off_ms;
        format!("{:.4} / {:.4} / {:.2}", p.p50, p.p99, p.max)
    });
    row("peak memory: VmHWM / sampled VmRSS (MiB)", a, b, |f| {
        format!("{:.1} / {:.1}", f.vm_hwm_mib, f.peak_rss_mib)
    });
    row("peak open fds / sockets", a, b, |f| {
        format!("{} / {}", f.peak_fds, f.peak_sockets)
    });
    row("hanging plugin: connections accepted", a, b, |f| {
        if f.scenario == "a" {
            "-".to_owned()
        } else {
            f.hanging_connections.to_string()
        }
    });
    row(
        "delivered / failed / shed / abandoned of matched",
        a,
        b,
        |f| {
            let r = &f.report;
            format!(
                "{} / {} / {} / {} of {}",
                r.delivered, r.failed, r.shed, r.abandoned, r.matched
            )
        },
    );
    row("failed: timeout; shed: backlog full / circuit", a, b, |f| {
        let r = &f.report;
        format!(
            "{}; {} / {}",
            r.timeout, r.shed_backlog_full, r.shed_circuit_open
        )
    });
    row("shutdown: drained, took (s)", a, b, |f| {
        format!("{}, {:.2}", f.report.drained, f.report.elapsed_seconds)
    });
}

/// One line per check; `false` when any failed.
fn check(a: &Figures, b: &Figures) -> bool {
    let mut all_met = true;
    let mut verdict = |met: bool, what: String| {
        println!("{} {what}", if met { "met:   " } else { "MISSED:" });
        all_met &= met;
    };
    let limit = a.healthy_latency_ms.p99 * P99_RATIO_LIMIT + P99_SLACK_MS;
    verdict(
        b.healthy_latency_ms.p99 <= limit,
        format!(
            "B's healthy p99 {:.2} ms within 2x A's {:.2} ms + 5 ms = {limit:.2} ms",
            b.healthy_latency_ms.p99, a.healthy_latency_ms.p99
        ),
    );
    let memory_delta = b.vm_hwm_mib - a.vm_hwm_mib;
    verdict(
        memory_delta <= MEMORY_DELTA_LIMIT_MIB,
        format!("B's peak memory {memory_delta:+.1} MiB against A's (limit +64 MiB)"),
    );
    let sockets_delta = b.peak_sockets as i64 - a.peak_sockets as i64;
    verdict(
        sockets_delta <= SOCKETS_DELTA_LIMIT,
        format!("B's peak sockets {sockets_delta:+} against A's (limit +{SOCKETS_DELTA_LIMIT})"),
    );
    for figures in [a, b] {
        let scenario = figures.scenario.to_uppercase();
        verdict(
            figures.hand_off_ms.p99 < HAND_OFF_P99_LIMIT_MS,
            format!(
                "{scenario}: hand-off p99 {:.4} ms (max {:.2} ms) under {HAND_OFF_P99_LIMIT_MS} ms",
                figures.hand_off_ms.p99, figures.hand_off_ms.max
            ),
        );
        let report = &figures.report;
        let ended = report.delivered + report.failed + report.shed + report.abandoned;
        let endpoints = if figures.scenario == "a" { 1 } else { 2 };
        verdict(
            ended == report.matched
                && report.matched == figures.accepted * endpoints
                && report.events_failed == 0
                && report.events_abandoned == 0,
            format!(
                "{scenario}: {ended} outcomes for {} matched ({} accepted x {endpoints} endpoints)",
                report.matched, figures.accepted
            ),
        );
        verdict(
            figures.healthy_received as u64 == figures.accepted,
            format!(
                "{scenario}: the healthy plugin received {} of {} accepted events",
                figures.healthy_received, figures.accepted
            ),
        );
    }
    all_met
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if let Some(scenario) = options.scenario {
        return match run_scenario(&options, scenario) {
            Ok(figures) => {
                println!(
                    "{}",
                    serde_json::to_string(&figures).expect("plain figures")
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("scenario {}: {error}", scenario.flag());
                ExitCode::FAILURE
            }
        };
    }
    let figures = run_child(&options, Scenario::HealthyOnly)
        .and_then(|a| Ok((a, run_child(&options, Scenario::WithHanging)?)));
    let (a, b) = match figures {
        Ok(figures) => figures,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "\n{} events/s for {} s, engine defaults, HttpNotifier defaults (10 s timeout)\n",
        options.rate, options.seconds
    );
    print_table(&a, &b);
    println!();
    if check(&a, &b) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
