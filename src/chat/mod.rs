//! Conversations: the turn pipeline (ARCHITECTURE.md), the grounding check, reply composition.

pub mod grounding;
