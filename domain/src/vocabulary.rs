//! The registry's vocabularies as enums, shared by storage, the service and the console:
//! each word as stored and sent, and what it means in plain words.

/// An enum of words: `as_str` (stored and sent), `parse`, `ALL` in a sensible order for
/// people, and `words` (what it means, for the console).
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal: $words:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// What it means, in plain words.
            pub fn words(self) -> &'static str {
                match self {
                    $($name::$variant => $words,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// What an audit event records.
    AuditAction {
        PromptCreated = "prompt.created": "a prompt was created",
        PromptUpdated = "prompt.updated": "a prompt's description or tags were changed",
        VersionCreated = "version.created": "a version was saved",
        LabelMoved = "label.moved": "a label was moved",
        LabelPolicySet = "label.policy.set": "a label's rules were changed",
        RequestOpened = "label.request.opened": "a label move was asked for",
        RequestApproved = "label.request.approved": "a requested move was approved",
        RequestRejected = "label.request.rejected": "a requested move was rejected",
        RequestWithdrawn = "label.request.withdrawn": "a requested move was withdrawn",
        RequestExpired = "label.request.expired": "a requested move expired undecided",
        RolloutStarted = "rollout.started": "a gradual rollout began",
        RolloutAdvanced = "rollout.advanced": "a rollout went to its next step",
        RolloutPaused = "rollout.paused": "a rollout stopped to wait for a person",
        RolloutResumed = "rollout.resumed": "a paused rollout carried on",
        RolloutCompleted = "rollout.completed": "a rollout reached everyone",
        RolloutRolledBack = "rollout.rolled_back": "a rollout took itself back",
        RolloutAborted = "rollout.aborted": "a person stopped a rollout",
        ReleaseCreated = "release.created": "several prompts were released together",
        ReleaseRolledBack = "release.rolled_back": "a release was taken back, every prompt together",
        SuiteSaved = "suite.saved": "an evaluation suite was saved",
        RunStarted = "eval.run.started": "an evaluation run began",
        RunFinished = "eval.run.finished": "an evaluation run finished",
        RunCancelled = "eval.run.cancelled": "an evaluation run was cancelled",
        RunInterrupted = "eval.run.interrupted": "an evaluation run was cut off by a stop of the server",
        RunResumed = "eval.run.resumed": "a replica carried on an evaluation run whose replica stopped",
        MigrationStarted = "eval.migration.started": "a model migration check began",
        ImpactStarted = "eval.impact.started": "a shared prompt's candidate was run against the prompts that include it",
        ProviderSaved = "provider.saved": "a model provider was set up",
        PriceSaved = "price.saved": "a model's price was set",
        DriftDetected = "drift.detected": "production ran something the registry did not say",
        BudgetSet = "budget.set": "a prompt's budget was set",
        BudgetRemoved = "budget.removed": "a prompt's budget was removed",
        BudgetAlert = "budget.alert": "a prompt's spending reached an alert threshold",
        WebhookCreated = "webhook.created": "a webhook was added",
        WebhookDeleted = "webhook.deleted": "a webhook was removed",
        UserCreated = "user.created": "a person was added",
        UserUpdated = "user.updated": "a person's role or password changed",
        UserDisabled = "user.disabled": "a person was disabled",
        UserEnabled = "user.enabled": "a person was enabled again",
        KeyCreated = "apikey.created": "an API key was created",
        KeyRevoked = "apikey.revoked": "an API key was revoked",
    }
}

vocabulary! {
    /// What a webhook can be sent.
    WebhookEvent {
        VersionCreated = "version.created": "a version is saved",
        LabelMoved = "label.moved": "a label moves",
        RequestOpened = "request.opened": "a label move is requested",
        RequestDecided = "request.decided": "a request is approved, rejected, withdrawn or expires",
        RunFinished = "eval.run.finished": "an evaluation run finishes",
        DriftDetected = "drift.detected": "production runs something the registry did not say (at most hourly per prompt)",
        BudgetThreshold = "budget.threshold": "a prompt's spending reaches an alert threshold of its budget",
        RolloutRolledBack = "rollout.rolled_back": "a gradual rollout takes itself back because the new version did worse",
        RolloutPaused = "rollout.paused": "a gradual rollout stops to wait for a person (too few calls to judge, or paused by hand)",
        RolloutCompleted = "rollout.completed": "a gradual rollout reaches everyone and moves the label",
    }
}

vocabulary! {
    /// An evaluation assertion's type (each may also be written with `not-` before it).
    AssertionType {
        Equals = "equals": "is exactly",
        Contains = "contains": "contains (exact case)",
        Icontains = "icontains": "contains (any case)",
        StartsWith = "starts-with": "starts with",
        ContainsAny = "contains-any": "contains any of, exact case (comma-separated)",
        ContainsAll = "contains-all": "contains all of, exact case (comma-separated)",
        IcontainsAny = "icontains-any": "contains any of (comma-separated)",
        IcontainsAll = "icontains-all": "contains all of (comma-separated)",
        Regex = "regex": "matches the pattern",
        IsJson = "is-json": "is JSON",
        ContainsJson = "contains-json": "contains JSON",
        JsonSchema = "json-schema": "is JSON matching the schema",
        Levenshtein = "levenshtein": "is within N edits of",
        WordCount = "word-count": "has this many words (min-max)",
        Latency = "latency": "answers within (ms)",
        Cost = "cost": "costs at most ($)",
        FinishReason = "finish-reason": "stops because of",
        LlmRubric = "llm-rubric": "a judge model agrees that",
        Similar = "similar": "means about the same as",
    }
}

vocabulary! {
    /// The HTTP protocol a model provider speaks.
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    ProviderKind {
        Openai = "openai": "OpenAI-compatible (OpenAI, vLLM, Ollama, LiteLLM…)",
        Anthropic = "anthropic": "Anthropic",
    }
}

impl AuditAction {
    /// The webhook event an audit event raises, if any.
    /// Whether the event changes who a key or session acts as (a cached key must be
    /// checked again).
    pub fn touches_keys(self) -> bool {
        use AuditAction as A;
        matches!(
            self,
            A::KeyCreated | A::KeyRevoked | A::UserCreated | A::UserUpdated | A::UserDisabled | A::UserEnabled
        )
    }

    /// Whether the event changes a budget (which each replica holds in memory).
    pub fn touches_budgets(self) -> bool {
        matches!(self, AuditAction::BudgetSet | AuditAction::BudgetRemoved)
    }

    pub fn webhook(self) -> Option<WebhookEvent> {
        use AuditAction as A;
        Some(match self {
            A::PromptCreated | A::VersionCreated => WebhookEvent::VersionCreated,
            A::LabelMoved => WebhookEvent::LabelMoved,
            A::RequestOpened => WebhookEvent::RequestOpened,
            A::RequestApproved | A::RequestRejected | A::RequestWithdrawn | A::RequestExpired => {
                WebhookEvent::RequestDecided
            }
            A::RunFinished => WebhookEvent::RunFinished,
            A::DriftDetected => WebhookEvent::DriftDetected,
            A::BudgetAlert => WebhookEvent::BudgetThreshold,
            A::RolloutRolledBack => WebhookEvent::RolloutRolledBack,
            A::RolloutPaused => WebhookEvent::RolloutPaused,
            A::RolloutCompleted => WebhookEvent::RolloutCompleted,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_are_unique() {
        for all in [
            AuditAction::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            WebhookEvent::ALL.iter().map(|e| e.as_str()).collect(),
        ] {
            let mut seen = std::collections::HashSet::new();
            assert!(all.iter().all(|w| seen.insert(*w)), "a word twice in {all:?}");
        }
        assert!(AuditAction::ALL.iter().all(|a| AuditAction::parse(a.as_str()) == Some(*a)));
        assert!(WebhookEvent::ALL.iter().all(|e| WebhookEvent::parse(e.as_str()) == Some(*e)));
        // Every webhook event is raised by some action.
        for e in WebhookEvent::ALL {
            assert!(AuditAction::ALL.iter().any(|a| a.webhook() == Some(*e)), "{e} is never raised");
        }
    }
}
