//! Graph types. Nodes and edges are named by domain ids (`category:<path>`, `brand:<name>`,
//! `attr:<key>=<value>`, `key:<name>`, `concept:<id>`, `policy:<id>`, `product:<id>`); `NodeIndex`
//! stays inside the module.

use serde::{Deserialize, Serialize};

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Product,
    Category,
    Brand,
    AttributeKey,
    Attribute,
    Concept,
    Policy,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Product => "product",
            Self::Category => "category",
            Self::Brand => "brand",
            Self::AttributeKey => "attribute_key",
            Self::Attribute => "attribute",
            Self::Concept => "concept",
            Self::Policy => "policy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Product,
            Self::Category,
            Self::Brand,
            Self::AttributeKey,
            Self::Attribute,
            Self::Concept,
            Self::Policy,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The kind named by an id's prefix.
    pub fn of_id(id: &str) -> Option<Self> {
        let (prefix, rest) = id.split_once(':')?;
        if rest.is_empty() {
            return None;
        }
        match prefix {
            "product" => Some(Self::Product),
            "category" => Some(Self::Category),
            "brand" => Some(Self::Brand),
            "key" => Some(Self::AttributeKey),
            "attr" => Some(Self::Attribute),
            "concept" => Some(Self::Concept),
            "policy" => Some(Self::Policy),
            _ => None,
        }
    }
}

/// How two nodes relate. Edges point from the specific to the general, or from the source of a
/// rule to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// product → category
    InCategory,
    /// category → parent category
    SubcategoryOf,
    /// product → brand
    MadeBy,
    /// product → attribute value
    HasAttribute,
    /// concept → category or attribute
    Suits,
    /// category → category bought with it
    Complements,
    /// category → category bought instead of it
    Substitutes,
    /// policy → category
    AppliesTo,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InCategory => "in_category",
            Self::SubcategoryOf => "subcategory_of",
            Self::MadeBy => "made_by",
            Self::HasAttribute => "has_attribute",
            Self::Suits => "suits",
            Self::Complements => "complements",
            Self::Substitutes => "substitutes",
            Self::AppliesTo => "applies_to",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::InCategory,
            Self::SubcategoryOf,
            Self::MadeBy,
            Self::HasAttribute,
            Self::Suits,
            Self::Complements,
            Self::Substitutes,
            Self::AppliesTo,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A curated node as stored in `kg_nodes` and written in `knowledge/graph/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct NodeRecord {
    pub id: String,
    pub kind: String,
    pub label_en: String,
    pub label_zh: Option<String>,
    pub synonyms_en: Vec<String>,
    pub synonyms_zh: Vec<String>,
    /// Kind-specific fields: a category's `path`, an attribute's `key`/`value`, a policy's
    /// `policy_kind`, `text_en`, `text_zh`, `facts`, `store_wide`; and the `file` it came from.
    pub data: sqlx::types::Json<serde_json::Value>,
}

/// A curated edge as stored in `kg_edges`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct EdgeRecord {
    pub from_id: String,
    pub to_id: String,
    pub kind: String,
    pub weight: f32,
}

/// Builds node ids from domain values, normalising case the way the graph matches them.
pub mod ids {
    pub fn product(id: &str) -> String {
        format!("product:{id}")
    }
    pub fn category(path: &str) -> String {
        format!("category:{path}")
    }
    pub fn brand(name: &str) -> String {
        format!("brand:{}", name.trim().to_lowercase())
    }
    pub fn key(name: &str) -> String {
        format!("key:{}", name.trim().to_lowercase())
    }
    pub fn attribute(key: &str, value: &str) -> String {
        format!(
            "attr:{}={}",
            key.trim().to_lowercase(),
            value.trim().to_lowercase()
        )
    }
    pub fn concept(id: &str) -> String {
        format!("concept:{id}")
    }
    pub fn policy(id: &str) -> String {
        format!("policy:{id}")
    }
}
