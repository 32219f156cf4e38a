//! (being written)

/// (being written)
#[derive(Debug)]
pub struct Queue;
/// (being written)
#[derive(Debug)]
pub enum Offer {}
