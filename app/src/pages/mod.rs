//! The console's pages.

pub mod prompts;
