//! The distributed mode: NATS JetStream as the work queue (`melv fleet --nats URL`, `melv
//! fleet-worker --nats URL`).
//!
//! * The coordinator puts the fleet's [`Bundle`] (the fleet file and every file it names) into the
//!   object store bucket [`BUCKET`] under the run's id, and publishes one [`Task`] per chunk of
//!   sites to the work-queue stream [`TASK_STREAM`] (subject `melv.fleet.task.RUN.CHUNK`).
//! * Workers share one durable pull consumer ([`CONSUMER`]) on that stream, so each task goes to one
//!   worker at a time. A worker builds the fleet from the bundle (once per run), runs the chunk's
//!   sites with the same code as a local run ([`Fleet::run_site`]) on all its cores, publishes a
//!   [`ChunkResult`] to the result stream [`RESULT_STREAM`] (subject `melv.fleet.result.RUN.CHUNK`,
//!   message id `RUN.CHUNK`), and only then acknowledges the task. While it runs it sends progress
//!   acknowledgements, so a long chunk is not taken for a dead worker.
//! * A worker that dies mid-task never acknowledges it: JetStream delivers the task again after the
//!   ack wait, to whichever worker asks next. A result published twice (the worker died between
//!   publishing and acknowledging, or a redelivered task finished twice) is dropped by the stream's
//!   duplicate window (same message id) or, past it, by the coordinator, which keeps the first
//!   result of each site.
//! * The run's id is a hash of the bundle, so a restarted coordinator finds its own run: it reads
//!   which chunks already have results and which tasks are still queued, publishes only the rest,
//!   and gathers every result from the start of the result stream.
//!
//! Results carry rows, not time series: a chunk's result is a few KB.

use crate::fleet::{Bundle, Fleet, FleetError};
use crate::run::{run_local, Done, SiteRow};
use async_nats::jetstream::{self, consumer, stream, Context};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub const TASK_STREAM: &str = "MELV_FLEET_TASKS";
pub const RESULT_STREAM: &str = "MELV_FLEET_RESULTS";
pub const CONSUMER: &str = "melv-fleet-workers";
pub const BUCKET: &str = "melv-fleet-bundles";
/// Streams and bundles are kept a week: long enough to restart a coordinator, short enough not to
/// fill a server with old runs.
const KEEP: Duration = Duration::from_secs(7 * 86_400);

/// A failure talking to NATS: what we were doing and the client's message.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("NATS: {doing}: {message}")]
    Nats { doing: String, message: String },
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("a worker failed on run {run} chunk {chunk}: {message}")]
    Worker {
        run: String,
        chunk: u64,
        message: String,
    },
}

fn ctx<E: std::fmt::Display>(doing: impl Into<String>) -> impl FnOnce(E) -> NatsError {
    let doing = doing.into();
    move |e| NatsError::Nats {
        doing,
        message: e.to_string(),
    }
}

/// One chunk of sites: `first .. first + count` of run `run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub run: String,
    pub chunk: u64,
    pub first: u64,
    pub count: u64,
}

/// What a worker publishes for a task: the chunk's rows, or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkResult {
    pub run: String,
    pub chunk: u64,
    pub worker: String,
    /// CPU time of the chunk's sites on the worker, s.
    pub cpu_s: f64,
    pub rows: Vec<SiteRow>,
    pub error: Option<String>,
}

/// The run's id: FNV-1a (64 bit) over the bundle's bytes, as 16 hex digits. The same fleet file
/// and files give the same id, which is how a restarted coordinator finds its run.
pub fn run_id(b: &Bundle) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in encode_bundle(b) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The bundle as bytes: each string or file as a little-endian u64 length and its bytes; the file
/// name, the text, the number of files, then name and bytes of each.
pub fn encode_bundle(b: &Bundle) -> Vec<u8> {
    let mut out = Vec::new();
    let mut put = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    put(b.file.as_bytes());
    put(b.text.as_bytes());
    put(&(b.files.len() as u64).to_le_bytes());
    for (k, v) in &b.files {
        put(k.as_bytes());
        put(v);
    }
    out
}

/// The inverse of [`encode_bundle`]; `None` for bytes it did not write.
pub fn decode_bundle(mut bytes: &[u8]) -> Option<Bundle> {
    let mut take = || -> Option<Vec<u8>> {
        let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
        let v = bytes.get(8..8usize.checked_add(n)?)?.to_vec();
        bytes = &bytes[8 + n..];
        Some(v)
    };
    let file = String::from_utf8(take()?).ok()?;
    let text = String::from_utf8(take()?).ok()?;
    let n = u64::from_le_bytes(take()?.try_into().ok()?);
    let mut files = BTreeMap::new();
    for _ in 0..n {
        let k = String::from_utf8(take()?).ok()?;
        files.insert(k, take()?);
    }
    Some(Bundle { file, text, files })
}

/// Connects and makes sure both streams and the workers' consumer exist (creating them the first
/// time, with the same configuration whoever comes first).
async fn connect(
    url: &str,
    ack_wait: Duration,
) -> Result<(Context, consumer::PullConsumer), NatsError> {
    let client = async_nats::connect(url)
        .await
        .map_err(ctx(format!("connecting to {url}")))?;
    let js = jetstream::new(client);
    let tasks = js
        .get_or_create_stream(stream::Config {
            name: TASK_STREAM.into(),
            subjects: vec!["melv.fleet.task.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: KEEP,
            ..Default::default()
        })
        .await
        .map_err(ctx("creating the task stream"))?;
    js.get_or_create_stream(stream::Config {
        name: RESULT_STREAM.into(),
        subjects: vec!["melv.fleet.result.>".into()],
        max_age: KEEP,
        ..Default::default()
    })
    .await
    .map_err(ctx("creating the result stream"))?;
    let consumer = tasks
        .get_or_create_consumer(
            CONSUMER,
            consumer::pull::Config {
                durable_name: Some(CONSUMER.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                ..Default::default()
            },
        )
        .await
        .map_err(ctx("creating the workers' consumer"))?;
    Ok((js, consumer))
}

async fn bundle_store(js: &Context) -> Result<jetstream::object_store::ObjectStore, NatsError> {
    match js.get_object_store(BUCKET).await {
        Ok(s) => Ok(s),
        Err(_) => js
            .create_object_store(jetstream::object_store::Config {
                bucket: BUCKET.into(),
                max_age: KEEP,
                ..Default::default()
            })
            .await
            .map_err(ctx("creating the bundle store")),
    }
}

/// The chunk numbers that appear in `stream`'s subjects under `prefix` (`melv.fleet.result.RUN`).
async fn chunks_in(js: &Context, stream: &str, prefix: &str) -> Result<BTreeSet<u64>, NatsError> {
    let s = js
        .get_stream(stream)
        .await
        .map_err(ctx(format!("reading stream {stream}")))?;
    let mut subjects = s
        .info_with_subjects(format!("{prefix}.*"))
        .await
        .map_err(ctx(format!("listing the subjects of {stream}")))?;
    let mut out = BTreeSet::new();
    while let Some((subject, _)) = subjects
        .try_next()
        .await
        .map_err(ctx(format!("listing the subjects of {stream}")))?
    {
        if let Some(c) = subject.rsplit('.').next().and_then(|c| c.parse().ok()) {
            out.insert(c);
        }
    }
    Ok(out)
}

/// What the coordinator gathered.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// One row per site, sorted by site.
    pub rows: Vec<SiteRow>,
    /// CPU time the workers spent on the results counted, s.
    pub workers_cpu_s: f64,
    /// Workers that sent a counted result.
    pub workers: BTreeSet<String>,
    /// Results that arrived for chunks already complete (counted once).
    pub duplicates: u64,
    /// Tasks this coordinator published (the rest were done or queued already).
    pub published: u64,
    pub run: String,
}

/// Runs the fleet on the workers: publishes what is not done or queued yet and gathers every site's
/// row. `progress(done)` is called as sites come in.
pub async fn coordinate(
    url: &str,
    bundle: &Bundle,
    fleet: &Fleet,
    ack_wait: Duration,
    progress: &mut dyn FnMut(u64),
) -> Result<Gathered, NatsError> {
    let (js, _) = connect(url, ack_wait).await?;
    let run = run_id(bundle);
    let store = bundle_store(&js).await?;
    if store.info(&run).await.is_err() {
        let bytes = encode_bundle(bundle);
        store
            .put(run.as_str(), &mut bytes.as_slice())
            .await
            .map_err(ctx("storing the fleet bundle"))?;
    }
    let sites = fleet.sites();
    let chunk = fleet.chunk.max(1);
    let chunks = sites.div_ceil(chunk);
    let done = chunks_in(&js, RESULT_STREAM, &format!("melv.fleet.result.{run}")).await?;
    let queued = chunks_in(&js, TASK_STREAM, &format!("melv.fleet.task.{run}")).await?;
    let mut g = Gathered {
        run: run.clone(),
        ..Default::default()
    };
    for c in (0..chunks).filter(|c| !done.contains(c) && !queued.contains(c)) {
        let first = c * chunk;
        let task = Task {
            run: run.clone(),
            chunk: c,
            first,
            count: chunk.min(sites - first),
        };
        let payload = serde_json::to_vec(&task).map_err(ctx("encoding a task"))?;
        js.send_publish(
            format!("melv.fleet.task.{run}.{c}"),
            jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(format!("{run}.{c}")),
        )
        .await
        .map_err(ctx("publishing a task"))?
        .await
        .map_err(ctx("publishing a task"))?;
        g.published += 1;
    }
    gather(&js, &run, sites, &mut g, progress).await?;
    Ok(g)
}

/// Reads the run's results from the start of the result stream until every site has its row.
async fn gather(
    js: &Context,
    run: &str,
    sites: u64,
    g: &mut Gathered,
    progress: &mut dyn FnMut(u64),
) -> Result<(), NatsError> {
    let results = js
        .get_stream(RESULT_STREAM)
        .await
        .map_err(ctx("reading the result stream"))?;
    let reader = results
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: format!("melv.fleet.result.{run}.>"),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(ctx("reading the result stream"))?;
    let mut messages = reader
        .messages()
        .await
        .map_err(ctx("reading the result stream"))?;
    let mut rows: BTreeMap<u64, SiteRow> = BTreeMap::new();
    while (rows.len() as u64) < sites {
        let Some(m) = messages.next().await else {
            break;
        };
        let m = m.map_err(ctx("reading a result"))?;
        let r: ChunkResult = serde_json::from_slice(&m.payload)
            .map_err(ctx(format!("decoding the result on {}", m.subject)))?;
        if let Some(message) = r.error {
            return Err(NatsError::Worker {
                run: r.run,
                chunk: r.chunk,
                message,
            });
        }
        let mut counted = false;
        for row in r.rows.into_iter().filter(|row| row.site < sites) {
            if let std::collections::btree_map::Entry::Vacant(e) = rows.entry(row.site) {
                e.insert(row);
                counted = true;
            }
        }
        if counted {
            g.workers_cpu_s += r.cpu_s;
            g.workers.insert(r.worker);
        } else {
            g.duplicates += 1;
        }
        progress(rows.len() as u64);
    }
    g.rows = rows.into_values().collect();
    Ok(())
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub url: String,
    /// Name in results and logs.
    pub name: String,
    /// Threads for a chunk's sites (0: one per core).
    pub threads: usize,
    pub ack_wait: Duration,
    /// Exit after this long without a task (`None`: run until killed).
    pub idle_exit: Option<Duration>,
}

/// Pulls tasks until killed (or idle for `idle_exit`); `log` gets one line per task.
pub async fn work(o: &WorkerOptions, log: &mut dyn FnMut(String)) -> Result<u64, NatsError> {
    let (js, consumer) = connect(&o.url, o.ack_wait).await?;
    let store = bundle_store(&js).await?;
    let mut fleets: HashMap<String, Arc<Fleet>> = HashMap::new();
    // One task at a time: a worker that fetched a batch would sit on tasks other workers could run,
    // and their ack wait would run out while they wait.
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(1)
        .messages()
        .await
        .map_err(ctx("pulling tasks"))?;
    let mut done = 0u64;
    loop {
        let next = match o.idle_exit {
            Some(d) => match tokio::time::timeout(d, messages.next()).await {
                Ok(n) => n,
                Err(_) => return Ok(done),
            },
            None => messages.next().await,
        };
        let Some(m) = next else { return Ok(done) };
        let m = m.map_err(ctx("pulling a task"))?;
        let delivered = m.info().map(|i| i.delivered).unwrap_or(1);
        let task: Task = match serde_json::from_slice(&m.payload) {
            Ok(t) => t,
            Err(e) => {
                log(format!(
                    "dropping a task that is not one ({e}) on {}",
                    m.subject
                ));
                let _ = m.ack_with(jetstream::AckKind::Term).await;
                continue;
            }
        };
        log(format!(
            "run {} chunk {} (sites {}..{}), delivery {delivered}",
            task.run,
            task.chunk,
            task.first,
            task.first + task.count
        ));
        let fleet = match fleets.get(&task.run) {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(load_fleet(&store, &task.run).await?);
                fleets.insert(task.run.clone(), f.clone());
                f
            }
        };
        let result = run_chunk(&m, fleet, &task, o).await;
        let payload = serde_json::to_vec(&result).map_err(ctx("encoding a result"))?;
        js.send_publish(
            format!("melv.fleet.result.{}.{}", task.run, task.chunk),
            jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(format!("{}.{}", task.run, task.chunk)),
        )
        .await
        .map_err(ctx("publishing a result"))?
        .await
        .map_err(ctx("publishing a result"))?;
        // Acknowledged only once the result is stored: a worker dying before this line leaves the
        // task to be delivered again.
        m.double_ack().await.map_err(ctx("acknowledging a task"))?;
        done += 1;
    }
}

async fn load_fleet(
    store: &jetstream::object_store::ObjectStore,
    run: &str,
) -> Result<Fleet, NatsError> {
    use tokio::io::AsyncReadExt;
    let mut obj = store
        .get(run)
        .await
        .map_err(ctx(format!("fetching the bundle of run {run}")))?;
    let mut bytes = Vec::new();
    (&mut obj)
        .take(crate::fleet::MAX_BUNDLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(ctx(format!("reading the bundle of run {run}")))?;
    let bundle = decode_bundle(&bytes).ok_or_else(|| NatsError::Nats {
        doing: format!("reading the bundle of run {run}"),
        message: "not a fleet bundle (or larger than the bound)".into(),
    })?;
    let fleet = tokio::task::spawn_blocking(move || Fleet::build(&bundle))
        .await
        .map_err(ctx("building the fleet"))??;
    Ok(fleet)
}

/// Runs a task's sites on a blocking thread, sending progress acknowledgements every third of the
/// ack wait so that JetStream does not give a live worker's task to another.
async fn run_chunk(
    m: &jetstream::Message,
    fleet: Arc<Fleet>,
    task: &Task,
    o: &WorkerOptions,
) -> ChunkResult {
    let total = fleet.sites();
    let sites: Vec<u64> = (task.first..(task.first + task.count).min(total)).collect();
    let threads = o.threads;
    let mut job = tokio::task::spawn_blocking(move || {
        let mut rows = Vec::with_capacity(sites.len());
        let mut cpu_s = 0.0;
        let r = run_local(&fleet, &sites, threads, &mut |d: Done| {
            cpu_s += d.cpu_s;
            rows.push(d.row);
        });
        rows.sort_by_key(|r| r.site);
        (r, rows, cpu_s)
    });
    let mut tick = tokio::time::interval((o.ack_wait / 3).max(Duration::from_millis(100)));
    tick.tick().await;
    let joined = loop {
        tokio::select! {
            j = &mut job => break j,
            _ = tick.tick() => {
                let _ = m.ack_with(jetstream::AckKind::Progress).await;
            }
        }
    };
    let mut out = ChunkResult {
        run: task.run.clone(),
        chunk: task.chunk,
        worker: o.name.clone(),
        cpu_s: 0.0,
        rows: Vec::new(),
        error: None,
    };
    match joined {
        Ok((Ok(()), rows, cpu_s)) => {
            out.rows = rows;
            out.cpu_s = cpu_s;
        }
        Ok((Err(e), _, _)) => out.error = Some(e.to_string()),
        Err(e) => out.error = Some(format!("the chunk's thread failed: {e}")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_round_trips_and_its_id_follows_its_bytes() {
        let mut b = Bundle {
            file: "fleet.toml".into(),
            text: "[fleet]\n".into(),
            files: BTreeMap::from([("a.csv".to_string(), vec![1, 2, 3])]),
        };
        let bytes = encode_bundle(&b);
        assert_eq!(decode_bundle(&bytes), Some(b.clone()));
        assert_eq!(decode_bundle(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_bundle(&[0xff; 8]), None);
        let id = run_id(&b);
        assert_eq!(id.len(), 16);
        assert_eq!(id, run_id(&b.clone()));
        b.files.insert("a.csv".into(), vec![1, 2, 4]);
        assert_ne!(id, run_id(&b));
    }
}
