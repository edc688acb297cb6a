//! What the in-process protocol tests share: a single-node broker on an ephemeral loopback
//! port, with no metrics or REST listener, its data in a fresh temporary directory.

use std::path::PathBuf;

use riptide_server::config::{KafkaListener, RestConfig, ServerConfig};

/// The config of such a broker with its data in `<tmp>/riptide-<name>-<pid>` (emptied first);
/// the directory, for the test to remove when done.
pub fn single_node(name: &str) -> (ServerConfig, PathBuf) {
    let dir = std::env::temp_dir().join(format!("riptide-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ServerConfig {
        data_dir: dir.clone(),
        listeners: vec![KafkaListener::plaintext("127.0.0.1:0".parse().expect("addr"))],
        metrics_listen: None,
        rest: RestConfig { listen: None, ..Default::default() },
        shards: 2,
        pin_shards: false,
        ..ServerConfig::default()
    };
    (config, dir)
}
