//! One module per page of the console.

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod calls;
pub mod evals;
pub mod history;
pub mod production;
pub mod prompt;
pub mod prompts;
pub mod releases;
pub mod rollouts;
