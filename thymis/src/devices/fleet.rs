//! Fleet views computed from the registry's records on request (http-api.md §11.2–11.4):
//! connectivity over time, per-device availability, and alerts.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::store::{ConnectionRecord, DeviceRecord, LatestMetric};

/// Width of the buckets that metrics are averaged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricGranularity {
    /// 1 minute (`1min`).
    OneMinute,
    /// 15 minutes (`15min`).
    FifteenMinutes,
    /// 1 hour (`1h`), the default.
    #[default]
    OneHour,
    /// 6 hours (`6h`).
    SixHours,
    /// 1 day (`1d`).
    OneDay,
}

impl MetricGranularity {
    /// The bucket width in seconds.
    pub fn seconds(self) -> u32 {
        match self {
            MetricGranularity::OneMinute => 60,
            MetricGranularity::FifteenMinutes => 15 * 60,
            MetricGranularity::OneHour => 3600,
            MetricGranularity::SixHours => 6 * 3600,
            MetricGranularity::OneDay => 24 * 3600,
        }
    }
}

impl FromStr for MetricGranularity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "1min" => MetricGranularity::OneMinute,
            "15min" => MetricGranularity::FifteenMinutes,
            "1h" => MetricGranularity::OneHour,
            "6h" => MetricGranularity::SixHours,
            "1d" => MetricGranularity::OneDay,
            other => {
                return Err(format!(
                    "unknown granularity {other:?} (expected 1min, 15min, 1h, 6h or 1d)"
                ))
            }
        })
    }
}

/// How many devices were connected at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectivityPoint {
    /// The sample time.
    pub timestamp: DateTime<Utc>,
    /// Connected devices then.
    pub connected_count: u64,
}

/// One device's online state at each sample time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AvailabilityRow {
    /// The device.
    pub deployment_info_id: Uuid,
    /// Its name.
    pub name: Option<String>,
    /// Online at each of [`Availability::timestamps`].
    pub states: Vec<bool>,
}

/// Every non-archived device's online state over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    /// The sample times.
    pub timestamps: Vec<DateTime<Utc>>,
    /// One row per device, by name (falling back to the id).
    pub devices: Vec<AvailabilityRow>,
}

/// Something about a device that needs attention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetAlert {
    /// The device.
    pub deployment_info_id: Uuid,
    /// Its name.
    pub name: Option<String>,
    /// `offline`, `flapping`, `cpu`, `ram` or `disk`.
    pub kind: &'static str,
    /// `warning` or `critical`.
    pub severity: &'static str,
    /// A sentence for people, e.g. `CPU at 95%`.
    pub detail: String,
    /// The measured value (hours offline, reconnects, percent).
    pub value: Option<f64>,
}

/// Warning threshold of CPU, RAM and disk use in percent; critical from
/// [`RESOURCE_CRITICAL`].
pub const RESOURCE_WARNING: f64 = 80.0;
/// Critical threshold of CPU, RAM and disk use in percent.
pub const RESOURCE_CRITICAL: f64 = 90.0;
/// A device unseen for this long is offline (critical from three times as long).
pub const OFFLINE_HOURS: i64 = 24;
/// More connects than this within [`FLAPPING_WINDOW_HOURS`] are flapping.
pub const FLAPPING_CONNECTS: usize = 5;
/// The window of the flapping count.
pub const FLAPPING_WINDOW_HOURS: i64 = 24;
/// Metrics older than this raise no resource alerts.
pub const METRIC_FRESHNESS_HOURS: i64 = 24;

/// `buckets + 1` evenly spaced times from `from` to `to`.
pub fn sample_points(from: DateTime<Utc>, to: DateTime<Utc>, buckets: u32) -> Vec<DateTime<Utc>> {
    let buckets = buckets.max(1);
    let span_micros = (to - from).num_microseconds().unwrap_or(0);
    (0..=buckets)
        .map(|i| from + Duration::microseconds(span_micros * i64::from(i) / i64::from(buckets)))
        .collect()
}

/// Whether a connection was open at `t` (connected at or before, not yet ended).
fn open_at(connection: &ConnectionRecord, t: DateTime<Utc>) -> bool {
    connection.connected_at <= t && !matches!(connection.disconnected_at, Some(end) if end <= t)
}

/// The number of open connections at each of `points`.
pub fn connectivity(
    connections: &[ConnectionRecord],
    points: &[DateTime<Utc>],
) -> Vec<ConnectivityPoint> {
    // A sweep over connect (+1) and disconnect (−1) events in time order.
    let mut events: Vec<(DateTime<Utc>, i64)> = Vec::with_capacity(connections.len() * 2);
    for connection in connections {
        events.push((connection.connected_at, 1));
        if let Some(end) = connection.disconnected_at {
            events.push((end, -1));
        }
    }
    events.sort();
    let mut active: i64 = 0;
    let mut next = events.iter().peekable();
    points
        .iter()
        .map(|&t| {
            while let Some((_, delta)) = next.next_if(|(at, _)| *at <= t) {
                active += delta;
            }
            ConnectivityPoint {
                timestamp: t,
                connected_count: active.max(0) as u64,
            }
        })
        .collect()
}

/// The online state of every device in `devices` that is not archived at each of `points`.
pub fn availability(
    devices: &[DeviceRecord],
    connections: &[ConnectionRecord],
    points: Vec<DateTime<Utc>>,
) -> Availability {
    let mut by_device: HashMap<Uuid, Vec<&ConnectionRecord>> = HashMap::new();
    for connection in connections {
        by_device
            .entry(connection.device_id)
            .or_default()
            .push(connection);
    }
    let mut rows: Vec<AvailabilityRow> = devices
        .iter()
        .filter(|device| !device.archived)
        .map(|device| {
            let own = by_device.get(&device.id).map(Vec::as_slice).unwrap_or(&[]);
            AvailabilityRow {
                deployment_info_id: device.id,
                name: device.name.clone(),
                states: points
                    .iter()
                    .map(|&t| own.iter().any(|c| open_at(c, t)))
                    .collect(),
            }
        })
        .collect();
    rows.sort_by_cached_key(|row| {
        row.name
            .clone()
            .unwrap_or_else(|| row.deployment_info_id.to_string())
    });
    Availability {
        timestamps: points,
        devices: rows,
    }
}

/// The alerts of the fleet at `now`, critical first, then by kind and device id.
/// `recent_connections` must hold at least the connections made in the last
/// [`FLAPPING_WINDOW_HOURS`].
pub fn alerts(
    devices: &[DeviceRecord],
    recent_connections: &[ConnectionRecord],
    latest_metrics: &[LatestMetric],
    now: DateTime<Utc>,
) -> Vec<FleetAlert> {
    let mut alerts = Vec::new();
    let active: HashMap<Uuid, &DeviceRecord> = devices
        .iter()
        .filter(|d| !d.archived)
        .map(|d| (d.id, d))
        .collect();

    for device in active.values() {
        let Some(last_seen) = device.last_seen_at else {
            continue;
        };
        let hours = (now - last_seen).num_seconds() as f64 / 3600.0;
        if hours > OFFLINE_HOURS as f64 {
            alerts.push(FleetAlert {
                deployment_info_id: device.id,
                name: device.name.clone(),
                kind: "offline",
                severity: if hours >= (OFFLINE_HOURS * 3) as f64 {
                    "critical"
                } else {
                    "warning"
                },
                detail: format!("Offline for {:.1} days", hours / 24.0),
                value: Some(hours),
            });
        }
    }

    let since = now - Duration::hours(FLAPPING_WINDOW_HOURS);
    let mut connects: HashMap<Uuid, usize> = HashMap::new();
    for connection in recent_connections
        .iter()
        .filter(|c| c.connected_at >= since)
    {
        *connects.entry(connection.device_id).or_default() += 1;
    }
    for (device_id, count) in connects {
        let Some(device) = active.get(&device_id) else {
            continue;
        };
        if count > FLAPPING_CONNECTS {
            alerts.push(FleetAlert {
                deployment_info_id: device_id,
                name: device.name.clone(),
                kind: "flapping",
                severity: "warning",
                detail: format!("{count} reconnects in 24h"),
                value: Some(count as f64),
            });
        }
    }

    let fresh = now - Duration::hours(METRIC_FRESHNESS_HOURS);
    for metric in latest_metrics.iter().filter(|m| m.sample.at >= fresh) {
        let sample = &metric.sample;
        for (kind, value) in [
            ("cpu", sample.cpu_percent),
            ("ram", sample.ram_percent),
            ("disk", sample.disk_percent),
        ] {
            if value >= RESOURCE_WARNING {
                alerts.push(FleetAlert {
                    deployment_info_id: metric.device_id,
                    name: metric.name.clone(),
                    kind,
                    severity: if value >= RESOURCE_CRITICAL {
                        "critical"
                    } else {
                        "warning"
                    },
                    detail: format!("{} at {value:.0}%", kind.to_uppercase()),
                    value: Some(value),
                });
            }
        }
    }

    alerts.sort_by(|a, b| {
        let rank = |alert: &FleetAlert| u8::from(alert.severity != "critical");
        (rank(a), a.kind, a.deployment_info_id.to_string()).cmp(&(
            rank(b),
            b.kind,
            b.deployment_info_id.to_string(),
        ))
    });
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::seconds(seconds)
    }

    fn connection(device: Uuid, from: i64, to: Option<i64>) -> ConnectionRecord {
        ConnectionRecord {
            id: Uuid::new_v4(),
            device_id: device,
            connected_at: at(from),
            disconnected_at: to.map(at),
            ip: None,
        }
    }

    #[test]
    fn points_are_even_and_include_both_ends() {
        let points = sample_points(at(0), at(100), 4);
        assert_eq!(points, vec![at(0), at(25), at(50), at(75), at(100)]);
    }

    #[test]
    fn connectivity_counts_open_connections() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let connections = [
            connection(a, 0, Some(50)),
            connection(b, 10, None),
            connection(a, 60, Some(70)),
        ];
        let points = sample_points(at(0), at(100), 10);
        let counts: Vec<u64> = connectivity(&connections, &points)
            .iter()
            .map(|p| p.connected_count)
            .collect();
        // A connection that ended at a sample time is no longer counted at it.
        assert_eq!(counts, vec![1, 2, 2, 2, 2, 1, 2, 1, 1, 1, 1]);
    }

    #[test]
    fn granularities() {
        assert_eq!("15min".parse::<MetricGranularity>().unwrap().seconds(), 900);
        assert!("2h".parse::<MetricGranularity>().is_err());
        assert_eq!(MetricGranularity::default().seconds(), 3600);
    }
}
