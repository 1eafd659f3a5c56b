//! A throwaway single-node Slurm (Debian's `slurm-wlm` and `munge`, installed
//! by scripts/test.sh): munged, slurmctld and slurmd in the foreground, in a
//! temporary directory, on free ports; killed when dropped. No systemd, no
//! cgroups.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::run::wait_until;

pub struct Slurm {
    base: tempfile::TempDir,
    conf: PathBuf,
    daemons: Vec<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn sbin(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.display().to_string();
        }
    }
    name.to_string()
}

fn mkdir(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting {cmd:?} (scripts/test.sh installs slurm-wlm and munge): {e}")
        })
}

impl Slurm {
    /// Starts munged, slurmctld and slurmd (node `localhost`, 2 CPUs) and
    /// waits until the node is idle.
    pub fn start() -> Slurm {
        let base = tempfile::Builder::new().prefix("slurm").tempdir().unwrap();
        let b = base.path();
        // munged insists on its directories' modes.
        mkdir(b, 0o711);
        let (m, s) = (b.join("munge"), b.join("slurm"));
        mkdir(&m, 0o711);
        for (d, mode) in [
            ("etc", 0o700),
            ("log", 0o700),
            ("lib", 0o711),
            ("run", 0o755),
        ] {
            mkdir(&m.join(d), mode);
        }
        for d in ["state", "spool", "log", "run"] {
            mkdir(&s.join(d), 0o755);
        }
        let key = m.join("etc/munge.key");
        let made = Command::new(sbin("mungekey"))
            .args(["-c", "-k"])
            .arg(&key)
            .status()
            .expect("mungekey (scripts/test.sh installs munge)");
        assert!(made.success(), "mungekey failed");
        let socket = m.join("run/munge.socket.2");
        let munged = spawn(
            Command::new(sbin("munged"))
                .arg("-F")
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--pid-file={}", m.join("run/munged.pid").display()))
                .arg(format!("--log-file={}", m.join("log/munged.log").display()))
                .arg(format!(
                    "--seed-file={}",
                    m.join("lib/munged.seed").display()
                )),
            &m.join("log/munged.fg"),
        );
        wait_until(Duration::from_secs(20), "munged", || socket.exists());
        let conf = s.join("slurm.conf");
        let (ctld_port, d_port) = (free_port(), free_port());
        let p = |d: &str| s.join(d).display().to_string();
        std::fs::write(
            &conf,
            format!(
                "ClusterName=myspooltest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket}
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={run}/slurmctld.pid
SlurmdPidFile={run}/slurmd.pid
SlurmctldLogFile={log}/slurmctld.log
SlurmdLogFile={log}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName=localhost CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
",
                socket = socket.display(),
                state = p("state"),
                spool = p("spool"),
                run = p("run"),
                log = p("log"),
            ),
        )
        .unwrap();
        let mut slurm = Slurm {
            conf,
            daemons: vec![munged],
            base,
        };
        let log = s.join("log");
        let ctld = spawn(
            Command::new(sbin("slurmctld"))
                .arg("-D")
                .env("SLURM_CONF", &slurm.conf),
            &log.join("ctld.fg"),
        );
        slurm.daemons.push(ctld);
        let d = spawn(
            Command::new(sbin("slurmd"))
                .args(["-D", "-N", "localhost"])
                .env("SLURM_CONF", &slurm.conf),
            &log.join("d.fg"),
        );
        slurm.daemons.push(d);
        wait_until(Duration::from_secs(60), "the Slurm node to be idle", || {
            slurm
                .command("sinfo")
                .args(["-h", "-o", "%t"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("idle"))
        });
        slurm
    }

    /// A Slurm client command for this cluster.
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(name);
        cmd.env("SLURM_CONF", &self.conf).stdin(Stdio::null());
        cmd
    }

    /// A directory for job output files.
    pub fn dir(&self) -> &Path {
        self.base.path()
    }

    /// The daemons' logs, for a failure message.
    pub fn logs(&self) -> String {
        let log = self.base.path().join("slurm/log");
        ["slurmctld.log", "slurmd.log", "ctld.fg", "d.fg"]
            .iter()
            .map(|f| {
                format!(
                    "--- {f}\n{}",
                    std::fs::read_to_string(log.join(f)).unwrap_or_default()
                )
            })
            .collect()
    }

    /// `sbatch --wait ARGS`, with `env` passed to the job.
    pub fn sbatch_wait(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut cmd = self.command("sbatch");
        cmd.arg("--wait").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("sbatch")
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        // slurmd, slurmctld, then munged.
        for child in self.daemons.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
