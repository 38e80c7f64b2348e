//! The TLS rows: P1 and P3 against the TLS cluster that `cargo xtask bench` starts, anysql with
//! `sslmode=verify-full` and raw tokio-postgres over the same rustls, reported as `P1t` and `P3t`.

use crate::common::{Bench, Figure, RepResult, Sizes, Workload};

/// `bench`, connected over TLS: runs P1 and P3 only, reporting them as `P1t` and `P3t`.
pub struct TlsRows<B>(pub B);

/// The key a workload's figure has over TLS.
fn tls_key(key: &'static str) -> &'static str {
    match key {
        "P1" => "P1t",
        "P3" => "P3t",
        other => other,
    }
}

impl<B: Bench> Bench for TlsRows<B> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn rep(&mut self, workload: Workload, sizes: &Sizes) -> Option<RepResult> {
        if !matches!(workload, Workload::P1 | Workload::P3) {
            return None;
        }
        let result = self.0.rep(workload, sizes)?;
        Some(result.map(|values| {
            values
                .into_iter()
                .map(|f| Figure {
                    key: tls_key(f.key),
                    ..f
                })
                .collect()
        }))
    }

    fn note(&self, workload: Workload) -> String {
        let inner = self.0.note(workload);
        if inner.is_empty() {
            "over TLS (verify-full)".to_owned()
        } else {
            format!("{inner}; over TLS (verify-full)")
        }
    }
}
