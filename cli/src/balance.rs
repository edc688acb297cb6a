//! `riptide cluster balance` and `riptide cluster decommission`: the balancer's view (load per
//! broker, moves running with progress and ETA, the plan) and its two operator actions. Kafka
//! has no API for a balancer, so these speak the controller protocol to the active
//! controller, found through DescribeQuorum (its CONTROLLER listener must be reachable from
//! here); everything else about moves goes through Kafka's own APIs.

use std::time::{Duration, Instant};

use riptide_quorum::rpc::{ControllerClient, Request, Response};
use riptide_quorum::{AdminCommand, BalanceReport, ControllerError};

use super::output::{self, key_values, OutputFormat, Table};
use super::{connect, CliError, CliResult, Conn};

/// How often `--wait` polls.
const POLL: Duration = Duration::from_secs(2);

/// The active controller, reached from a thread of its own (the controller client runs on
/// tokio; the CLI's runtime is compio).
struct Controllers(Vec<String>, riptide_quorum::Transport);

impl Controllers {
    async fn find(conn: &Conn) -> Result<Controllers, CliError> {
        let quorum = connect(conn).await?.describe_quorum().await?;
        let addrs: Vec<String> = quorum.controller_addrs.into_iter().map(|(_, a)| a).collect();
        if addrs.is_empty() {
            return Err(CliError::failed("DescribeQuorum named no controller listener to reach"));
        }
        Ok(Controllers(addrs, conn.controller_transport()?))
    }

    fn call(&self, request: Request) -> Result<Response, CliError> {
        let addrs = self.0.clone();
        let transport = self.1.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let client = ControllerClient::new(addrs, transport);
                let deadline = Instant::now() + Duration::from_secs(15);
                let make = || match &request {
                    Request::Balance { run } => Request::Balance { run: *run },
                    Request::Admin(cmd) => Request::Admin(cmd.clone()),
                    _ => Request::DescribeQuorum,
                };
                client.call(make, Duration::from_secs(10), deadline).await.map_err(std::io::Error::other)
            })
        });
        let result = thread.join().map_err(|_| CliError::failed("the controller call panicked"))?;
        result.map_err(|e| CliError::failed(format!("the active controller did not answer: {e}")))
    }

    fn report(&self, run: bool) -> Result<BalanceReport, CliError> {
        match self.call(Request::Balance { run })? {
            Response::Balance(Ok(r)) => Ok(r),
            Response::Balance(Err(e)) => Err(controller_error(e)),
            other => Err(CliError::failed(format!("unexpected controller answer: {other:?}"))),
        }
    }
}

fn controller_error(e: ControllerError) -> CliError {
    CliError::failed(format!("controller: {e}"))
}

pub async fn balance(conn: &Conn, dry_run: bool, wait: bool, timeout: Duration) -> CliResult {
    let controllers = Controllers::find(conn).await?;
    let report = controllers.report(!dry_run)?;
    print_report(conn.output, &report, dry_run)?;
    if wait && !dry_run {
        wait_until(conn.output, &controllers, timeout, |r| r.running.is_empty() && r.planned.is_empty())?;
        output::print("balanced: no move running or planned\n")?;
    }
    Ok(())
}

pub async fn decommission(conn: &Conn, id: i32, cancel: bool, wait: bool, timeout: Duration) -> CliResult {
    let controllers = Controllers::find(conn).await?;
    match controllers.call(Request::Admin(AdminCommand::Decommission { id, draining: !cancel }))? {
        Response::Admin(Ok(_)) => {}
        Response::Admin(Err(e)) => return Err(controller_error(e)),
        other => return Err(CliError::failed(format!("unexpected controller answer: {other:?}"))),
    }
    if cancel {
        return Ok(output::print(&format!("broker {id} is back in service (no longer drained)\n"))?);
    }
    let drained = |r: &BalanceReport| r.brokers.iter().find(|b| b.id == id).is_none_or(|b| b.replicas == 0);
    let report = controllers.report(false)?;
    let left = report.brokers.iter().find(|b| b.id == id).map_or(0, |b| b.replicas);
    output::print(&format!(
        "broker {id} is being decommissioned: {left} replica(s) to move off, {} move(s) at a time\n",
        report.config.as_ref().map_or(0, |c| c.max_concurrent_moves)
    ))?;
    if wait {
        wait_until(conn.output, &controllers, timeout, drained)?;
    } else if !drained(&report) {
        return Ok(output::print(&format!(
            "run `riptide cluster decommission {id} --wait` (or `riptide cluster balance`) to follow it\n"
        ))?);
    }
    output::print(&format!(
        "broker {id} holds no replicas and leads no partition: it can be stopped (then `riptide cluster unregister {id}`)\n"
    ))?;
    Ok(())
}

/// Polls the report until `done`, printing progress with an ETA from the observed rate.
fn wait_until(
    format: OutputFormat,
    controllers: &Controllers,
    timeout: Duration,
    done: impl Fn(&BalanceReport) -> bool,
) -> CliResult {
    let started = Instant::now();
    let mut last: Option<(Instant, u64)> = None;
    loop {
        let r = controllers.report(false)?;
        if done(&r) {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(CliError::failed(format!(
                "not done after {} s ({} move(s) running, {} planned)",
                timeout.as_secs(),
                r.running.len(),
                r.planned.len()
            )));
        }
        let left: u64 = r.running.iter().map(|m| m.bytes_left).sum();
        let now = Instant::now();
        let eta = match last {
            Some((t, before)) if before > left => {
                let rate = (before - left) as f64 / now.duration_since(t).as_secs_f64();
                format!("{:.0} s at {}/s", left as f64 / rate, human(rate as u64))
            }
            _ => match r.config.as_ref().map(|c| c.throttle_bytes_per_sec).filter(|t| *t > 0) {
                Some(t) => format!("~{:.0} s at the throttle", left as f64 / t as f64),
                None => "-".into(),
            },
        };
        last = Some((now, left));
        if format == OutputFormat::Table {
            output::print(&format!(
                "{:>5} s: {} move(s) running, {} planned, {} left to copy, ETA {eta}{}\n",
                started.elapsed().as_secs(),
                r.running.len(),
                r.planned.len(),
                human(left),
                r.paused.as_ref().map_or(String::new(), |p| format!(" (paused: {p})"))
            ))?;
        }
        std::thread::sleep(POLL);
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn print_report(format: OutputFormat, r: &BalanceReport, dry_run: bool) -> CliResult {
    if format == OutputFormat::Json {
        let value = serde_json::to_value(r).map_err(|e| CliError::failed(e.to_string()))?;
        return Ok(output::print_json(&value)?);
    }
    let cfg = r.config.clone().unwrap_or_default();
    let mut text = key_values(&[
        ("BALANCER", if cfg.enabled { "on".into() } else { "off (moves run on request)".into() }),
        ("PAUSED", r.paused.clone().unwrap_or_else(|| "no".into())),
        ("REPLICA-SPREAD", r.replica_spread.to_string()),
        ("LEADER-SPREAD", r.leader_spread.to_string()),
        ("BYTES-IN-IMBALANCE", format!("{:.2} (threshold {:.2})", r.bytes_imbalance, cfg.threshold)),
        ("MOVES-AT-A-TIME", cfg.max_concurrent_moves.to_string()),
        ("THROTTLE", format!("{}/s", human(cfg.throttle_bytes_per_sec))),
    ]);
    let mut brokers = Table::new(&[
        "BROKER",
        "STATE",
        "REPLICAS",
        "LEADERS",
        "PREFERRED",
        "BYTES-IN/S",
        "BYTES-OUT/S",
        "DISK",
    ]);
    for b in &r.brokers {
        let state = match (b.live, b.draining) {
            (_, true) => "draining",
            (true, false) => "live",
            (false, false) => "fenced",
        };
        brokers.row(vec![
            b.id.to_string(),
            state.into(),
            b.replicas.to_string(),
            b.leaders.to_string(),
            b.preferred_leaders.to_string(),
            human(b.bytes_in_per_sec as u64),
            human(b.bytes_out_per_sec as u64),
            if b.disk_total_bytes == 0 {
                "-".into()
            } else {
                format!("{} / {}", human(b.disk_used_bytes), human(b.disk_total_bytes))
            },
        ]);
    }
    text.push('\n');
    text.push_str(&brokers.render());
    if !r.running.is_empty() {
        let mut t = Table::new(&["RUNNING", "REPLICAS", "ADDING", "REMOVING", "PROGRESS", "LEFT", "ETA"]);
        for m in &r.running {
            let done = m.total_bytes.saturating_sub(m.bytes_left);
            let pct = if m.total_bytes == 0 { 100.0 } else { 100.0 * done as f64 / m.total_bytes as f64 };
            let eta = if cfg.throttle_bytes_per_sec > 0 {
                format!("~{:.0} s", m.bytes_left as f64 / cfg.throttle_bytes_per_sec as f64)
            } else {
                "-".into()
            };
            t.row(vec![
                format!("{}-{}", m.topic, m.partition),
                output::list(&m.replicas),
                output::list(&m.adding),
                output::list(&m.removing),
                format!("{pct:.0}%"),
                human(m.bytes_left),
                eta,
            ]);
        }
        text.push('\n');
        text.push_str(&t.render());
    }
    let (title, moves) =
        if dry_run || r.started.is_empty() { ("PLANNED", &r.planned) } else { ("STARTED", &r.started) };
    if moves.is_empty() {
        text.push_str(if r.running.is_empty() {
            "\nbalanced: nothing to move\n"
        } else {
            "\nnothing more to plan\n"
        });
    } else {
        let mut t = Table::new(&[title, "FROM", "TO", "COPY", "REASON"]);
        for m in moves {
            let why: Vec<String> = m.reasons.iter().map(|x| x.to_string()).collect();
            t.row(vec![
                format!("{}-{}", m.topic, m.partition),
                output::list(&m.from),
                output::list(&m.to),
                if m.is_reorder() { "reorder".into() } else { human(m.bytes) },
                why.join("; "),
            ]);
        }
        text.push('\n');
        text.push_str(&t.render());
        if !dry_run && r.planned.len() > r.started.len() {
            text.push_str(&format!(
                "{} more planned; the balancer starts them as running moves finish\n",
                r.planned.len() - r.started.len()
            ));
        }
    }
    Ok(output::print(&text)?)
}
