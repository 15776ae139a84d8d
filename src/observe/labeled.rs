//! A metric family keyed by a small set of label values, which (unlike
//! `prometheus_client`'s `Family`) can be listed, so the OTLP bridge reads the
//! same series the Prometheus endpoint shows.
//!
//! Meant for label sets that are few and long-lived (realms × transports ×
//! serializers, peers, auth methods): lookups are a linear scan under a read lock,
//! so hot paths should keep the metric a lookup returns rather than look it up again.

use std::sync::{Arc, RwLock};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Label names and values of one series.
pub type Labels = Vec<(&'static str, String)>;

/// Series of metric `M`, one per label set, in creation order.
#[derive(Debug)]
pub struct Labeled<M> {
    series: Arc<RwLock<Vec<(Labels, M)>>>,
}

impl<M> Clone for Labeled<M> {
    fn clone(&self) -> Self {
        Labeled { series: self.series.clone() }
    }
}

impl<M> Default for Labeled<M> {
    fn default() -> Self {
        Labeled { series: Arc::default() }
    }
}

impl<M: Clone + Default> Labeled<M> {
    /// The series for `labels` (a clone sharing its value), created on first use.
    pub fn get(&self, labels: &[(&'static str, &str)]) -> M {
        let same = |l: &Labels| {
            l.len() == labels.len() && l.iter().zip(labels).all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        };
        {
            let series = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, m)) = series.iter().find(|(l, _)| same(l)) {
                return m.clone();
            }
        }
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, m)) = series.iter().find(|(l, _)| same(l)) {
            return m.clone();
        }
        let m = M::default();
        series.push((labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(), m.clone()));
        m
    }

    /// Every series with its labels.
    pub fn list(&self) -> Vec<(Labels, M)> {
        self.series.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl<M: EncodeMetric + TypedMetric + std::fmt::Debug> EncodeMetric for Labeled<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        for (labels, m) in series.iter() {
            m.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}
