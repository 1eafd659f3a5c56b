//! A 3-node Galera cluster: three throwaway `mariadbd` of the server harness
//! ([`Server`]) with wsrep on, replicating to each other over free ports of
//! 127.0.0.1 (group communication, IST and rsync SST each need one per node).
//!
//! One cluster per test process, started on first use (~15 s: node 1
//! bootstraps, 2 and 3 join by SST one after the other) and shared by every
//! Galera test through a lock: [`cluster`] for a test that only loads into
//! its own databases (many at once), [`cluster_alone`] for one that kills a
//! node or changes a global variable (alone). The nodes die with the test
//! process like every harness server.
//!
//! Root logs in over TCP without a password (the harness's datadir), so
//! every node is reached by its own URL. A read on a node right after a
//! commit on another needs the causality wait: [`Cluster::sync_all`].

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::server::free_port;
use super::Server;

/// The Galera library of Debian's `galera-4`.
const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";
/// How long a node may take to reach `Synced`.
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// The three nodes. `nodes[0]` bootstrapped the cluster.
pub struct Cluster {
    pub nodes: Vec<Server>,
}

fn shared() -> &'static RwLock<Cluster> {
    static CLUSTER: OnceLock<RwLock<Cluster>> = OnceLock::new();
    CLUSTER.get_or_init(|| RwLock::new(Cluster::start()))
}

/// The shared cluster, for a test that only uses its own databases.
pub fn cluster() -> RwLockReadGuard<'static, Cluster> {
    shared().read().unwrap_or_else(|p| p.into_inner())
}

/// The shared cluster, for a test that kills nodes or sets globals: no other
/// Galera test runs meanwhile. It must leave three synced nodes behind.
pub fn cluster_alone() -> RwLockWriteGuard<'static, Cluster> {
    shared().write().unwrap_or_else(|p| p.into_inner())
}

impl Cluster {
    fn start() -> Cluster {
        let started = Instant::now();
        let group: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let address = format!(
            "gcomm://{}",
            group
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let name = format!("myspool-test-{}", std::process::id());
        let mut nodes: Vec<Server> = Vec::new();
        for (n, gport) in group.iter().enumerate() {
            let mut options = vec![
                "--binlog-format=ROW".to_string(),
                "--default-storage-engine=InnoDB".into(),
                "--innodb-autoinc-lock-mode=2".into(),
                "--innodb-flush-log-at-trx-commit=0".into(),
                "--wsrep-on=ON".into(),
                format!("--wsrep-provider={PROVIDER}"),
                format!("--wsrep-cluster-name={name}"),
                format!("--wsrep-cluster-address={address}"),
                format!("--wsrep-node-name=node{}", n + 1),
                format!("--wsrep-node-address=127.0.0.1:{gport}"),
                // What the node tells clients it is reached at
                // (`wsrep_incoming_addresses`, read by node discovery): its
                // own port. Left AUTO, a node bound to 127.0.0.1 says "AUTO".
                "--wsrep-node-incoming-address=127.0.0.1".into(),
                format!(
                    "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{gport};\
                     ist.recv_addr=127.0.0.1:{};gcache.size=64M",
                    free_port()
                ),
                "--wsrep-sst-method=rsync".into(),
                format!("--wsrep-sst-receive-address=127.0.0.1:{}", free_port()),
            ];
            if n == 0 {
                // Only the first start: a restarted node 1 joins the others.
                options.push("--wsrep-new-cluster".into());
            }
            let options: Vec<&str> = options.iter().map(String::as_str).collect();
            let node = Server::start_prepared(&options, open_to_sst_daemon);
            wait_synced(&node);
            nodes.push(node);
        }
        let cluster = Cluster { nodes };
        cluster.wait_size(3);
        eprintln!(
            "galera: 3 nodes synced in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        cluster
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::url).collect()
    }

    /// `--to URL` for every node.
    pub fn to_args(&self) -> Vec<String> {
        self.urls()
            .into_iter()
            .flat_map(|u| ["--to".to_string(), u])
            .collect()
    }

    /// Waits until every node has applied everything committed anywhere so
    /// far (a read with `wsrep_sync_wait`): plain reads then see it.
    pub fn sync_all(&self) {
        for node in &self.nodes {
            node.query("SET SESSION wsrep_sync_wait = 1; SELECT 1");
        }
    }

    /// SIGKILLs node `n` (0-based; never 0, whose options bootstrap).
    pub fn kill(&mut self, n: usize) {
        assert_ne!(n, 0, "node 1 bootstraps the cluster: kill another");
        self.nodes[n].kill();
    }

    /// Starts node `n` again: it rejoins and is `Synced`. After a kill -9
    /// a bare mariadbd has lost its position (no `--wsrep-recover` as
    /// mysqld_safe would run), so it rejoins by SST, which needs the files
    /// that mariadbd created meanwhile opened to the daemon too.
    pub fn restart(&mut self, n: usize) {
        let dir = self.nodes[n].datadir();
        open_to_sst_daemon(dir.parent().expect("the datadir's directory"));
        self.nodes[n].restart();
        wait_synced(&self.nodes[n]);
        self.wait_size(3);
    }

    /// Waits until every node is back in the cluster and `Synced`.
    pub fn wait_synced_all(&self) {
        for node in &self.nodes {
            wait_synced(node);
        }
        self.wait_size(3);
    }

    /// Waits until every running node sees `size` members.
    pub fn wait_size(&self, size: usize) {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            wait_status(node, "wsrep_cluster_size", &size.to_string());
        }
    }
}

/// As root, the rsync SST daemon that the joiner's mariadbd starts runs as
/// `nobody`: it must reach the joiner's datadir and own what is in it (rsync
/// sets the permissions of what it copies, and only an owner may; a root
/// mariadbd reads and writes files of any owner).
fn open_to_sst_daemon(dir: &Path) {
    let run = |program: &str, args: &[&str], paths: &[PathBuf]| {
        let status = std::process::Command::new(program)
            .args(args)
            .args(paths)
            .status()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        assert!(status.success(), "{program} {args:?} {paths:?}");
    };
    if running_as_root() {
        run("chmod", &["755"], &[dir.to_path_buf()]);
        run(
            "chown",
            &["-R", "nobody"],
            &[dir.join("data"), dir.join("tmp")],
        );
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn wait_synced(node: &Server) {
    wait_status(node, "wsrep_local_state_comment", "Synced");
}

/// Waits until `SHOW STATUS LIKE name` on `node` is `value`.
fn wait_status(node: &Server, name: &str, value: &str) {
    let deadline = Instant::now() + SYNC_TIMEOUT;
    loop {
        // A joining node may drop its clients (its SST restarts parts of
        // it): an error is "not yet", until the deadline.
        let now = node.try_status(name).map_err(|e| e.to_string());
        if now.as_ref().is_ok_and(|v| v.as_deref() == Some(value)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node on port {}: {name} is {now:?}, not {value}, after {SYNC_TIMEOUT:?}\n{}",
            node.port(),
            node.error_log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
