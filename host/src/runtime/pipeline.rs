//! [`Pipeline`]: a chain of operators, each one's output the next one's input. Each operator
//! is a [`Stage`] of one or more instances; the outputs of one stage are routed by their own key
//! to the next stage's instances (a re-key), so stages of different parallelism follow each
//! other.

use super::stage::Stage;
use crate::{Batch, CallError, OperatorInstance};

/// A chain of operators: each one's output is the next one's input.
#[derive(Debug, Default)]
pub struct Pipeline {
    operators: Vec<Stage>,
}

impl Pipeline {
    /// A pipeline of single-instance `operators`, in order.
    pub fn new(operators: Vec<OperatorInstance>) -> Self {
        Self::of_stages(operators.into_iter().map(Stage::single).collect())
    }

    /// A pipeline of `stages`, in order.
    pub fn of_stages(stages: Vec<Stage>) -> Self {
        Self { operators: stages }
    }

    /// The operators, in order.
    pub fn operators(&self) -> &[Stage] {
        &self.operators
    }

    /// The operators, mutable.
    pub fn operators_mut(&mut self) -> &mut [Stage] {
        &mut self.operators
    }

    /// Set every operator's watermark without calling it (a restored job).
    pub fn set_watermark(&mut self, watermark: Option<i64>) {
        for op in &mut self.operators {
            op.set_watermark(watermark);
        }
    }

    /// Every operator as a checkpoint cut sees it.
    pub fn checkpoint_parts(&mut self) -> Vec<crate::checkpoint::OperatorPart<'_>> {
        self.operators.iter_mut().map(Stage::checkpoint_part).collect()
    }

    /// Run one batch through every operator and then advance event time, as one transaction:
    /// if any call fails, every operator's writes for this batch are rolled back.
    pub fn step(&mut self, batch: &Batch, watermark: Option<i64>) -> Result<Batch, CallError> {
        for op in &mut self.operators {
            op.begin_batch();
        }
        let result = match self.operators.as_mut_slice() {
            // One operator: its events and its watermark in one hand-over to its instances.
            [only] => only.step(batch, watermark),
            _ => self.process(batch).and_then(|mut out| {
                if let Some(w) = watermark {
                    out.append(&self.on_watermark(w)?);
                }
                Ok(out)
            }),
        };
        for op in &mut self.operators {
            if result.is_ok() {
                op.commit_batch();
            } else {
                op.rollback_batch();
            }
        }
        result
    }

    /// Run one batch through every operator; returns the last operator's output. Inside the
    /// transaction [`Pipeline::step`] opens.
    fn process(&mut self, batch: &Batch) -> Result<Batch, CallError> {
        let mut events: Option<Batch> = None;
        for op in &mut self.operators {
            let input = events.as_ref().unwrap_or(batch);
            if input.is_empty() {
                break;
            }
            events = Some(op.process_batch(input)?);
        }
        Ok(events.unwrap_or_else(|| batch.clone()))
    }

    /// Advance event time to `watermark` in every operator. What operator `i` emits on the
    /// watermark is processed by the operators after it before they see the watermark. Inside
    /// the transaction [`Pipeline::step`] opens.
    fn on_watermark(&mut self, watermark: i64) -> Result<Batch, CallError> {
        let mut carried = Batch::new();
        for op in &mut self.operators {
            if !carried.is_empty() {
                carried = op.process_batch(&carried)?;
            }
            carried.append(&op.on_watermark_batch(watermark)?);
        }
        Ok(carried)
    }
}
