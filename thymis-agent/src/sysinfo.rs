//! What the agent reports about the machine: CPU, RAM and disk use, total RAM (all from the
//! real `/proc` and `statvfs`) and the network interfaces (`getifaddrs`).

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use thymis_protocol::NetworkInterface;

/// CPU time counters from the first line of `/proc/stat`: (total, idle incl. iowait).
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already
    // counted in user and nice.
    let total = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total, idle))
}

/// CPU use between two `/proc/stat` samples, in percent.
#[derive(Debug, Default)]
pub struct CpuSampler {
    previous: Option<(u64, u64)>,
}

impl CpuSampler {
    /// Takes a sample; the first call gives the average since boot.
    pub fn sample(&mut self) -> io::Result<f64> {
        let text = std::fs::read_to_string("/proc/stat")?;
        let now = parse_proc_stat(&text)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/stat"))?;
        Ok(self.next(now))
    }

    /// Feeds a counter pair and gives the use since the previous one.
    pub fn next(&mut self, now: (u64, u64)) -> f64 {
        let (total, idle) = match self.previous.replace(now) {
            Some((t, i)) => (now.0.saturating_sub(t), now.1.saturating_sub(i)),
            None => now,
        };
        if total == 0 {
            return 0.0;
        }
        round1(100.0 * (total.saturating_sub(idle)) as f64 / total as f64)
    }
}

/// (MemTotal, MemAvailable) in bytes from `/proc/meminfo` text.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kib * 1024)
        })
    };
    Some((field("MemTotal")?, field("MemAvailable")?))
}

fn meminfo() -> io::Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    parse_meminfo(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/meminfo"))
}

/// Total RAM in bytes.
pub fn ram_total_bytes() -> io::Result<u64> {
    meminfo().map(|(total, _)| total)
}

/// RAM in use (total − available), in percent.
pub fn ram_percent() -> io::Result<f64> {
    let (total, available) = meminfo()?;
    if total == 0 {
        return Ok(0.0);
    }
    Ok(round1(
        100.0 * total.saturating_sub(available) as f64 / total as f64,
    ))
}

/// Use of the file system holding `path`, in percent of what unprivileged users can use
/// (as psutil and `df` compute it).
pub fn disk_percent(path: &Path) -> io::Result<f64> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: plain data filled by statvfs.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and struct pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    let used = (st.f_blocks as u64).saturating_sub(st.f_bfree as u64) * frsize;
    let usable = used + st.f_bavail as u64 * frsize;
    if usable == 0 {
        return Ok(0.0);
    }
    Ok(round1(100.0 * used as f64 / usable as f64))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The network interfaces except `lo`, sorted by name, each with sorted addresses and its MAC
/// (lower-case hex with colons) if it has a link-layer address.
pub fn network_interfaces() -> io::Result<Vec<NetworkInterface>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut interfaces: BTreeMap<String, NetworkInterface> = BTreeMap::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: a node of the list returned by getifaddrs, valid until freeifaddrs.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(entry.ifa_name) }
            .to_string_lossy()
            .into_owned();
        if name == "lo" {
            continue;
        }
        let iface = interfaces
            .entry(name.clone())
            .or_insert_with(|| NetworkInterface {
                interface: name,
                ipv4_addresses: Vec::new(),
                ipv6_addresses: Vec::new(),
                mac_address: None,
            });
        if entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose real type is given by sa_family.
        let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
        match family {
            libc::AF_INET => {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                iface.ipv4_addresses.push(ip.to_string());
            }
            libc::AF_INET6 => {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                iface.ipv6_addresses.push(ip.to_string());
            }
            libc::AF_PACKET => {
                // SAFETY: an AF_PACKET address is a sockaddr_ll.
                let sll = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_ll>() };
                let len = usize::from(sll.sll_halen).min(sll.sll_addr.len());
                if len > 0 {
                    let mac: Vec<String> = sll.sll_addr[..len]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    iface.mac_address = Some(mac.join(":"));
                }
            }
            _ => {}
        }
    }
    // SAFETY: the list from getifaddrs, not used afterwards.
    unsafe { libc::freeifaddrs(list) };
    Ok(interfaces
        .into_values()
        .map(|mut iface| {
            iface.ipv4_addresses.sort();
            iface.ipv6_addresses.sort();
            iface
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_from_proc_stat() {
        let a = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n";
        let b = "cpu  150 0 150 800 100 0 0 0 0 0\n";
        let mut sampler = CpuSampler::default();
        assert_eq!(sampler.next(parse_proc_stat(a).unwrap()), 20.0);
        assert_eq!(sampler.next(parse_proc_stat(b).unwrap()), 50.0);
        assert_eq!(parse_proc_stat("garbage"), None);
        // Real file.
        assert!((0.0..=100.0).contains(&CpuSampler::default().sample().unwrap()));
    }

    #[test]
    fn memory_and_disk() {
        let text = "MemTotal:        2048 kB\nMemFree:  10 kB\nMemAvailable:     512 kB\n";
        assert_eq!(parse_meminfo(text), Some((2048 * 1024, 512 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert!(ram_total_bytes().unwrap() > 0);
        assert!((0.0..=100.0).contains(&ram_percent().unwrap()));
        assert!((0.0..=100.0).contains(&disk_percent(Path::new("/")).unwrap()));
        assert!(disk_percent(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn interfaces_exclude_lo_and_are_sorted() {
        let list = network_interfaces().unwrap();
        assert!(list.iter().all(|i| i.interface != "lo"));
        assert!(list.windows(2).all(|w| w[0].interface < w[1].interface));
        for iface in &list {
            assert!(iface.ipv4_addresses.windows(2).all(|w| w[0] <= w[1]));
            for ip in &iface.ipv4_addresses {
                ip.parse::<Ipv4Addr>().unwrap();
            }
        }
    }
}
