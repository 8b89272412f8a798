//! The process metrics every Prometheus client library exports — `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds` — read from `/proc` at each scrape, so the
//! dashboards and alerts built for any instrumented program (memory of a scheduled job, fd leaks) work
//! for secretsync too. Linux only: where `/proc/self` cannot be read, none is exported.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`: 100 on every Linux, fixed by its ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc` says about this process now.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sample {
    pub(super) resident_bytes: f64,
    pub(super) virtual_bytes: f64,
    pub(super) cpu_seconds: f64,
    pub(super) start_time_seconds: f64,
    pub(super) open_fds: f64,
    pub(super) max_fds: Option<f64>,
}

impl Sample {
    /// This process, or `None` where `/proc` is not Linux's.
    pub(super) fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        Self::parse(&stat, &status, &boot, &limits, open_fds)
    }

    /// A sample from the text of `/proc/self/stat`, `/proc/self/status`, `/proc/stat` and
    /// `/proc/self/limits`.
    pub(super) fn parse(stat: &str, status: &str, boot: &str, limits: &str, open_fds: usize) -> Option<Self> {
        // The command name may hold spaces and parentheses: the fields start after the last `)`.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Counted from `state`, the third field of proc(5): utime 14, stime 15, starttime 22.
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let kilobytes = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
                .map(|kb| kb * 1024.0)
        };
        let booted = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        let max_fds = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|soft| soft.parse::<f64>().ok());
        Some(Self {
            resident_bytes: kilobytes("VmRSS:")?,
            virtual_bytes: kilobytes("VmSize:")?,
            cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
            start_time_seconds: booted + field(22)? / TICKS_PER_SECOND,
            #[allow(clippy::cast_precision_loss)] // fd counts are far below 2^52
            open_fds: open_fds as f64,
            max_fds,
        })
    }
}

/// Exports a fresh [`Sample`] at each scrape, with the HELP texts of Prometheus's Go client
/// word for word (a Pushgateway, itself a Go program with these metrics, keeps one HELP per
/// name).
#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(sample) = Sample::read() else {
            return Ok(());
        };
        let mut gauge = |name: &str, help: &str, value: f64| -> Result<(), std::fmt::Error> {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            sample.resident_bytes,
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            sample.virtual_bytes,
        )?;
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            sample.start_time_seconds,
        )?;
        gauge("process_open_fds", "Number of open file descriptors.", sample.open_fds)?;
        if let Some(max) = sample.max_fds {
            gauge("process_max_fds", "Maximum number of open file descriptors.", max)?;
        }
        let cpu = ConstCounter::new(sample.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::Sample;

    #[test]
    fn a_sample_is_read_from_proc_text_whatever_the_command_name() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 4 0 12345 200000000 1000 18446744073709551615";
        let status = "Name:\tsecretsync\nVmSize:\t  195312 kB\nVmRSS:\t   40960 kB\n";
        let boot = "cpu  1 2 3\nbtime 1764900000\nprocesses 10\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        let s = Sample::parse(stat, status, boot, limits, 9).expect("parsed");
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(s.resident_bytes, 40960.0 * 1024.0), "{s:?}");
        assert!(close(s.virtual_bytes, 195_312.0 * 1024.0), "{s:?}");
        assert!(close(s.cpu_seconds, 3.0), "250 + 50 ticks: {s:?}");
        assert!(close(s.start_time_seconds, 1_764_900_123.45), "{s:?}");
        assert!(close(s.open_fds, 9.0), "{s:?}");
        assert!(s.max_fds.is_some_and(|m| close(m, 1024.0)), "{s:?}");
        assert_eq!(Sample::parse("garbage", status, boot, limits, 1), None);
    }

    #[test]
    fn this_process_has_memory_cpu_and_fds() {
        let s = Sample::read().expect("Linux /proc");
        assert!(s.resident_bytes > 1_000_000.0, "{s:?}");
        assert!(s.open_fds >= 3.0, "{s:?}");
        assert!(s.start_time_seconds > 1_600_000_000.0, "{s:?}");
    }
}
