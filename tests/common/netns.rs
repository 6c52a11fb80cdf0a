//! An impaired network path made for one test, at the IP packet level: a network namespace
//! joined to this one through two TUN devices (one in each namespace), with this process
//! pumping the packets between them and imposing delay, jitter, loss and outages on each
//! direction. TCP on both ends sees a real lossy, slow link (retransmissions, backoff).
//! (`tc netem` would do the same in the kernel, but the kernels here are built without it.)
//! Programs started with [`ImpairedPath::command`] run inside the namespace; the server side
//! listens on [`ImpairedPath::host_ip`]. Everything is removed when dropped. Needs root,
//! /dev/net/tun and iproute2 (`scripts/test` installs it).

use std::fs::File;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command as StdCommand;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::process::Command;

/// What one direction does to packets.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    pub delay: Duration,
    /// Added delay, uniform in `0..=jitter` (order is kept, as on a cellular bearer).
    pub jitter: Duration,
    /// Share of packets dropped (0.01 = 1%).
    pub loss: f64,
}

pub struct ImpairedPath {
    ns: String,
    tun_ns: String,
    tun_host: String,
    pub host_ip: Ipv4Addr,
    outage: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn run(args: &[&str]) {
    let out = StdCommand::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{} is required (Debian: iproute2): {e}", args[0]));
    assert!(
        out.status.success(),
        "`{}` failed (root, /dev/net/tun and iproute2 are needed): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Attaches to the persistent TUN device `name` (in this namespace).
fn attach(name: &str) -> File {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_NO_PI: libc::c_short = 0x1000;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("/dev/net/tun");
    // struct ifreq: the name, then the flags, padded to 40 bytes.
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `ifr` is laid out as.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, ifr.as_mut_ptr()) };
    assert_eq!(
        r,
        0,
        "TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
    f
}

/// True when `fd` has a packet within `timeout`.
fn readable(fd: &File, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
    n > 0 && p.revents & libc::POLLIN != 0
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Moves packets from `from` to `to` under `imp`, until `stop`.
fn pump(
    mut from: File,
    mut to: File,
    imp: Impairment,
    seed: u64,
    outage: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> [std::thread::JoinHandle<()>; 2] {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let stop2 = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut rng = seed | 1;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut last = Instant::now();
        let mut buf = vec![0u8; 65536];
        while !stop2.load(Ordering::Relaxed) {
            if !readable(&from, Duration::from_millis(50)) {
                continue;
            }
            let Ok(n) = from.read(&mut buf) else { break };
            if outage.load(Ordering::Relaxed) || next() < imp.loss {
                continue;
            }
            let at = Instant::now() + imp.delay + imp.jitter.mul_f64(next());
            // Order kept: never before the packet ahead of it.
            last = last.max(at);
            if tx.send((last, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    let writer = std::thread::spawn(move || {
        while let Ok((at, p)) = rx.recv() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // The link's delay: the emulation itself, not a wait for anything.
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            let _ = to.write_all(&p);
        }
    });
    [reader, writer]
}

impl ImpairedPath {
    /// `to_ns`: what packets towards the namespace suffer; `from_ns`: the other way.
    pub fn create(to_ns: Impairment, from_ns: Impairment) -> Self {
        let n = std::process::id() % 10_000 * 10 + NEXT.fetch_add(1, Ordering::Relaxed) % 10;
        let ns = format!("gcns{n}");
        let tun_ns = format!("gcn{n}");
        let tun_host = format!("gch{n}");
        let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + (n % 16_000) * 4;
        let host_ip = Ipv4Addr::from(base + 1);
        let ns_ip = Ipv4Addr::from(base + 2);
        let (outage, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut me = Self {
            ns: ns.clone(),
            tun_ns: tun_ns.clone(),
            tun_host: tun_host.clone(),
            host_ip,
            outage: outage.clone(),
            stop: stop.clone(),
            threads: Vec::new(),
        };
        run(&["ip", "netns", "add", &ns]);
        for t in [&tun_ns, &tun_host] {
            run(&["ip", "tuntap", "add", "mode", "tun", "name", t]);
        }
        // Attached here, then one device moves into the namespace (the fd stays attached).
        let (fd_ns, fd_host) = (attach(&tun_ns), attach(&tun_host));
        run(&["ip", "link", "set", &tun_ns, "netns", &ns]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/32"),
            "peer",
            &format!("{ns_ip}/32"),
            "dev",
            &tun_host,
        ]);
        run(&["ip", "link", "set", &tun_host, "up"]);
        let in_ns = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", ns.as_str()];
            v.extend_from_slice(args);
            run(&v);
        };
        in_ns(&[
            "ip",
            "addr",
            "add",
            &format!("{ns_ip}/32"),
            "peer",
            &format!("{host_ip}/32"),
            "dev",
            &tun_ns,
        ]);
        in_ns(&["ip", "link", "set", &tun_ns, "up"]);
        in_ns(&["ip", "link", "set", "lo", "up"]);
        let (fd_ns2, fd_host2) = (fd_ns.try_clone().unwrap(), fd_host.try_clone().unwrap());
        me.threads.extend(pump(
            fd_host,
            fd_ns,
            to_ns,
            0x1234_5678,
            outage.clone(),
            stop.clone(),
        ));
        me.threads
            .extend(pump(fd_ns2, fd_host2, from_ns, 0x9abc_def0, outage, stop));
        me
    }

    /// Drops every packet both ways (`true`) or restores the configured path.
    pub fn outage(&self, on: bool) {
        self.outage.store(on, Ordering::Relaxed);
    }

    /// `program` run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }
}

impl Drop for ImpairedPath {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Deleting the namespace removes the device inside it; either may be gone already.
        let _ = StdCommand::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(std::process::Stdio::null())
            .status();
        for t in [&self.tun_host, &self.tun_ns] {
            let _ = StdCommand::new("ip")
                .args(["link", "del", t])
                .stderr(std::process::Stdio::null())
                .status();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
