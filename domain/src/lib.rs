//! The pure rules of promptledger: prompt and label names, templates and their strict
//! rendering, the canonical content hash, diffs, the audit chain's hash and who may do
//! what. Nothing here does I/O or knows about HTTP or SQL, so the browser console runs
//! exactly the same code as the server (live preview, hashes) and it is tested with a
//! plain `cargo test`.

pub mod access;
pub mod audit;
pub mod canonical;
pub mod compose;
pub mod content;
pub mod diff;
pub mod eval;
pub mod model;
pub mod names;
pub mod rollout;
pub mod telemetry;
pub mod template;
pub mod vocabulary;

pub use access::{Action, Role, Scope};
pub use content::{Content, Message, MessageRole, PromptBody, PromptType, Rendered};
pub use names::NameError;
pub use template::{RenderLimits, TemplateError};
