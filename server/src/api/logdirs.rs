//! DescribeLogDirs: the replicas this broker holds in its one log directory, with their size
//! and how far each lags the high watermark it knows (Kafka's `offset_lag`: 0 for a leader
//! and for an in-sync follower). Kafka's tools (`kafka-log-dirs`) and `riptide topic describe`
//! read replica lag from it.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::shard::router::gather_replica_logs;

pub async fn handle(ctx: &Ctx, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let wanted: Option<BTreeMap<String, Vec<i32>>> =
        request.topics.map(|ts| ts.into_iter().map(|t| (t.topic.0.to_string(), t.partitions)).collect());
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for r in gather_replica_logs(&ctx.shard).await {
        let asked =
            wanted.as_ref().is_none_or(|w| w.get(&*r.topic).is_some_and(|ps| ps.contains(&r.partition)));
        if asked {
            by_topic.entry(r.topic.to_string()).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(r.partition)
                    .with_partition_size(r.size_bytes as i64)
                    .with_offset_lag(r.offset_lag),
            );
        }
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let (total, usable) = disk_space(&ctx.broker.config.data_dir);
    let dir = std::fs::canonicalize(&ctx.broker.config.data_dir)
        .unwrap_or_else(|_| ctx.broker.config.data_dir.clone());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable)])
}

/// (total, available) bytes of the file system holding `dir`; -1 when unknown.
fn disk_space(dir: &std::path::Path) -> (i64, i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return (-1, -1) };
    // SAFETY: statvfs writes into the zeroed struct; the path is a valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return (-1, -1);
        }
        let frsize = st.f_frsize as i64;
        (st.f_blocks as i64 * frsize, st.f_bavail as i64 * frsize)
    }
}
