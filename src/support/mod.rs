//! Human support. So far the escalation rules (`rules.rs`: when a conversation should go to a
//! person, and why); the chat pipeline escalates on a direct request, and the queue, the agents'
//! dashboard, takeover and hand-back are the support issue's work.

pub mod rules;
