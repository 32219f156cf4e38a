//! [`Metered`]: usage and cost accounting with a per-model price table the user can override.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sre_core::{ChatRequest, ChatResponse, LlmError, LlmProvider, Usage};

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Input tokens.
    pub input_per_mtok: f64,
    /// Output tokens.
    pub output_per_mtok: f64,
}

/// Prices by model name (matched exactly, then by the longest prefix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable(pub BTreeMap<String, Price>);

impl Default for PriceTable {
    /// List prices as published by the providers when this table was written; override them with
    /// your contract's.
    fn default() -> Self {
        let p = |i, o| Price {
            input_per_mtok: i,
            output_per_mtok: o,
        };
        Self(BTreeMap::from([
            ("llama-3.3-70b-versatile".into(), p(0.59, 0.79)),
            ("llama-3.1-8b-instant".into(), p(0.05, 0.08)),
            ("gpt-4o".into(), p(2.50, 10.00)),
            ("gpt-4o-mini".into(), p(0.15, 0.60)),
            ("anthropic.claude-3-5-sonnet".into(), p(3.00, 15.00)),
            ("anthropic.claude-3-haiku".into(), p(0.25, 1.25)),
            ("meta.llama3-1-70b-instruct".into(), p(0.72, 0.72)),
        ]))
    }
}

impl PriceTable {
    /// The price of `model`, if known.
    pub fn price(&self, model: &str) -> Option<Price> {
        let model = model.rsplit('/').next().unwrap_or(model);
        self.0.get(model).copied().or_else(|| {
            self.0
                .iter()
                .filter(|(k, _)| model.starts_with(k.as_str()) || model.contains(k.as_str()))
                .max_by_key(|(k, _)| k.len())
                .map(|(_, p)| *p)
        })
    }

    /// The cost of `usage` on `model`, in USD.
    pub fn cost(&self, model: &str, usage: Usage) -> Option<f64> {
        #[expect(
            clippy::cast_precision_loss,
            reason = "token counts are far below 2^52"
        )]
        self.price(model).map(|p| {
            (usage.input_tokens as f64 * p.input_per_mtok
                + usage.output_tokens as f64 * p.output_per_mtok)
                / 1e6
        })
    }
}

/// A provider that adds up the usage and cost of another.
#[derive(Debug)]
pub struct Metered<P> {
    inner: P,
    model: String,
    prices: PriceTable,
    totals: Mutex<Usage>,
}

impl<P: LlmProvider> Metered<P> {
    /// Meters `inner`, priced as `model`.
    pub fn new(inner: P, model: &str, prices: PriceTable) -> Self {
        Self {
            inner,
            model: model.to_owned(),
            prices,
            totals: Mutex::new(Usage::default()),
        }
    }

    /// Tokens so far.
    pub fn usage(&self) -> Usage {
        self.totals.lock().map(|u| *u).unwrap_or_default()
    }

    /// Estimated cost so far in USD (`None` when the model is not in the table).
    pub fn cost_usd(&self) -> Option<f64> {
        self.prices.cost(&self.model, self.usage())
    }
}

#[async_trait]
impl<P: LlmProvider> LlmProvider for Metered<P> {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let r = self.inner.chat(request).await?;
        if let Ok(mut t) = self.totals.lock() {
            *t += r.usage;
        }
        Ok(r)
    }

    fn name(&self) -> String {
        self.inner.name()
    }
}
