//! The curated layer's text format (`knowledge/graph/*.toml`, described in its README) and its
//! conversion to and from node and edge records. Export writes each node back to the file it came
//! from, so `kg export` then `kg import` reproduces the same records.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json;

use super::error::GraphError;
use super::model::{EdgeKind, EdgeRecord, NodeKind, NodeRecord, ids};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    category: Vec<Category>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    brand: Vec<Brand>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    key: Vec<Key>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attribute: Vec<Attribute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    concept: Vec<Concept>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    policy: Vec<Policy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    complements: Vec<Relation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    substitutes: Vec<Relation>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Labels {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zh: Option<String>,
    #[serde(default)]
    synonyms_en: Vec<String>,
    #[serde(default)]
    synonyms_zh: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Category {
    path: String,
    en: String,
    #[serde(flatten)]
    labels: Labels,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Brand {
    name: String,
    #[serde(flatten)]
    labels: Labels,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Key {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zh: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attribute {
    key: String,
    value: String,
    #[serde(flatten)]
    labels: Labels,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Concept {
    id: String,
    en: String,
    #[serde(flatten)]
    labels: Labels,
    #[serde(default)]
    suits: Vec<Target>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attribute: Option<String>,
    #[serde(default = "one")]
    weight: f32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    id: String,
    kind: String,
    en: String,
    #[serde(flatten)]
    labels: Labels,
    text_en: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text_zh: Option<String>,
    #[serde(default)]
    facts: BTreeMap<String, toml::Value>,
    #[serde(default)]
    applies_to: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Relation {
    from: String,
    to: String,
    #[serde(default = "one")]
    weight: f32,
}

fn one() -> f32 {
    1.0
}

/// The curated layer as records.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Curated {
    pub nodes: Vec<NodeRecord>,
    pub edges: Vec<EdgeRecord>,
}

fn node(
    id: String,
    kind: NodeKind,
    en: String,
    labels: Labels,
    mut data: Value,
    file: &str,
) -> NodeRecord {
    data["file"] = json!(file);
    NodeRecord {
        id,
        kind: kind.as_str().to_owned(),
        label_en: en,
        label_zh: labels.zh,
        synonyms_en: labels.synonyms_en,
        synonyms_zh: labels.synonyms_zh,
        data: Json(data),
    }
}

fn edge(from: &str, to: String, kind: EdgeKind, weight: f32) -> EdgeRecord {
    EdgeRecord {
        from_id: from.to_owned(),
        to_id: to,
        kind: kind.as_str().to_owned(),
        weight,
    }
}

/// `"key=value"` → the attribute's id.
fn attribute_target(s: &str) -> Result<String, String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("attribute target {s:?} is not key=value"))?;
    Ok(ids::attribute(k, v))
}

/// The curated files compiled into the binary, so a binary run from anywhere (an evaluation
/// harness, an installed copy) still has the graph's curated layer.
const BUILTIN: &[(&str, &str)] = &[
    (
        "attributes.toml",
        include_str!("../../knowledge/graph/attributes.toml"),
    ),
    (
        "brands.toml",
        include_str!("../../knowledge/graph/brands.toml"),
    ),
    (
        "concepts.toml",
        include_str!("../../knowledge/graph/concepts.toml"),
    ),
    (
        "policies.toml",
        include_str!("../../knowledge/graph/policies.toml"),
    ),
    (
        "relations.toml",
        include_str!("../../knowledge/graph/relations.toml"),
    ),
    (
        "taxonomy-demo.toml",
        include_str!("../../knowledge/graph/taxonomy-demo.toml"),
    ),
    (
        "taxonomy-flipkart.toml",
        include_str!("../../knowledge/graph/taxonomy-flipkart.toml"),
    ),
];

/// The curated layer as compiled into the binary (the repository's `knowledge/graph`).
pub fn builtin() -> Result<Curated, GraphError> {
    let mut out = Curated::default();
    for (name, text) in BUILTIN {
        parse_file(text, name, &mut out)
            .map_err(|e| GraphError::Invalid(format!("built-in {name}: {e}")))?;
    }
    Ok(out)
}

/// Reads every `*.toml` in `dir` (sorted by name).
pub fn read_dir(dir: &Path) -> Result<Curated, GraphError> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| GraphError::Invalid(format!("cannot read {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    let mut out = Curated::default();
    for path in names {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| GraphError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        parse_file(&text, &file_name, &mut out)
            .map_err(|e| GraphError::Invalid(format!("{}: {e}", path.display())))?;
    }
    Ok(out)
}

fn parse_file(text: &str, file: &str, out: &mut Curated) -> Result<(), String> {
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    for c in f.category {
        let id = ids::category(&c.path);
        out.nodes.push(node(
            id,
            NodeKind::Category,
            c.en,
            c.labels,
            json!({"path": c.path}),
            file,
        ));
    }
    for b in f.brand {
        let id = ids::brand(&b.name);
        let en = b.name.clone();
        out.nodes.push(node(
            id,
            NodeKind::Brand,
            en,
            b.labels,
            json!({"name": b.name}),
            file,
        ));
    }
    for k in f.key {
        let labels = Labels {
            zh: k.zh,
            ..Labels::default()
        };
        let data = json!({"aliases": k.aliases});
        out.nodes.push(node(
            ids::key(&k.name),
            NodeKind::AttributeKey,
            k.name,
            labels,
            data,
            file,
        ));
    }
    for a in f.attribute {
        let id = ids::attribute(&a.key, &a.value);
        let data = json!({"key": a.key.to_lowercase(), "value": a.value});
        out.nodes
            .push(node(id, NodeKind::Attribute, a.value, a.labels, data, file));
    }
    for c in f.concept {
        let id = ids::concept(&c.id);
        for t in &c.suits {
            let to = match (&t.category, &t.attribute) {
                (Some(path), None) => ids::category(path),
                (None, Some(attr)) => attribute_target(attr)?,
                _ => {
                    return Err(format!(
                        "concept {:?}: each suits entry names one category or one attribute",
                        c.id
                    ));
                }
            };
            out.edges.push(edge(&id, to, EdgeKind::Suits, t.weight));
        }
        out.nodes
            .push(node(id, NodeKind::Concept, c.en, c.labels, json!({}), file));
    }
    for p in f.policy {
        let id = ids::policy(&p.id);
        for path in &p.applies_to {
            out.edges
                .push(edge(&id, ids::category(path), EdgeKind::AppliesTo, 1.0));
        }
        let facts = serde_json::to_value(&p.facts).map_err(|e| e.to_string())?;
        let data = json!({
            "policy_kind": p.kind, "text_en": p.text_en, "text_zh": p.text_zh, "facts": facts,
            "store_wide": p.applies_to.is_empty(),
        });
        out.nodes
            .push(node(id, NodeKind::Policy, p.en, p.labels, data, file));
    }
    for (relations, kind) in [
        (f.complements, EdgeKind::Complements),
        (f.substitutes, EdgeKind::Substitutes),
    ] {
        for r in relations {
            out.edges.push(edge(
                &ids::category(&r.from),
                ids::category(&r.to),
                kind,
                r.weight,
            ));
        }
    }
    Ok(())
}

fn labels(n: &NodeRecord) -> Labels {
    Labels {
        zh: n.label_zh.clone(),
        synonyms_en: n.synonyms_en.clone(),
        synonyms_zh: n.synonyms_zh.clone(),
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn default_file(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Category => "taxonomy.toml",
        NodeKind::Brand => "brands.toml",
        NodeKind::AttributeKey | NodeKind::Attribute => "attributes.toml",
        NodeKind::Concept => "concepts.toml",
        NodeKind::Policy => "policies.toml",
        NodeKind::Product => "products.toml",
    }
}

/// Renders the records as files (name → TOML text), each node in the file it came from; relations
/// go to `relations.toml`.
pub fn render(curated: &Curated) -> Result<BTreeMap<String, String>, GraphError> {
    let mut files: BTreeMap<String, File> = BTreeMap::new();
    let edges_from = |id: &str, kind: EdgeKind| -> Vec<&EdgeRecord> {
        curated
            .edges
            .iter()
            .filter(|e| e.from_id == id && e.kind == kind.as_str())
            .collect()
    };
    for n in &curated.nodes {
        let kind = NodeKind::parse(&n.kind).ok_or_else(|| {
            GraphError::Invalid(format!("node {} has unknown kind {}", n.id, n.kind))
        })?;
        let d = &n.data.0;
        let file = d
            .get("file")
            .and_then(Value::as_str)
            .unwrap_or(default_file(kind))
            .to_owned();
        let f = files.entry(file).or_default();
        let rest =
            n.id.split_once(':')
                .map(|(_, r)| r.to_owned())
                .unwrap_or_default();
        match kind {
            NodeKind::Category => f.category.push(Category {
                path: text(d, "path"),
                en: n.label_en.clone(),
                labels: labels(n),
            }),
            NodeKind::Brand => f.brand.push(Brand {
                name: text(d, "name"),
                labels: labels(n),
            }),
            NodeKind::AttributeKey => f.key.push(Key {
                name: n.label_en.clone(),
                aliases: serde_json::from_value(d.get("aliases").cloned().unwrap_or(json!([])))
                    .unwrap_or_default(),
                zh: n.label_zh.clone(),
            }),
            NodeKind::Attribute => f.attribute.push(Attribute {
                key: text(d, "key"),
                value: text(d, "value"),
                labels: labels(n),
            }),
            NodeKind::Concept => f.concept.push(Concept {
                id: rest,
                en: n.label_en.clone(),
                labels: labels(n),
                suits: edges_from(&n.id, EdgeKind::Suits)
                    .into_iter()
                    .map(|e| match e.to_id.strip_prefix("category:") {
                        Some(path) => Target {
                            category: Some(path.to_owned()),
                            attribute: None,
                            weight: e.weight,
                        },
                        None => Target {
                            category: None,
                            attribute: e.to_id.strip_prefix("attr:").map(str::to_owned),
                            weight: e.weight,
                        },
                    })
                    .collect(),
            }),
            NodeKind::Policy => f.policy.push(Policy {
                id: rest,
                kind: text(d, "policy_kind"),
                en: n.label_en.clone(),
                labels: labels(n),
                text_en: text(d, "text_en"),
                text_zh: d.get("text_zh").and_then(Value::as_str).map(str::to_owned),
                facts: serde_json::from_value(d.get("facts").cloned().unwrap_or(json!({})))
                    .unwrap_or_default(),
                applies_to: edges_from(&n.id, EdgeKind::AppliesTo)
                    .into_iter()
                    .filter_map(|e| e.to_id.strip_prefix("category:").map(str::to_owned))
                    .collect(),
            }),
            NodeKind::Product => {}
        }
    }
    let relations = files.entry("relations.toml".to_owned()).or_default();
    for e in &curated.edges {
        let (Some(from), Some(to)) = (
            e.from_id.strip_prefix("category:"),
            e.to_id.strip_prefix("category:"),
        ) else {
            continue;
        };
        let r = Relation {
            from: from.to_owned(),
            to: to.to_owned(),
            weight: e.weight,
        };
        match EdgeKind::parse(&e.kind) {
            Some(EdgeKind::Complements) => relations.complements.push(r),
            Some(EdgeKind::Substitutes) => relations.substitutes.push(r),
            _ => {}
        }
    }
    files
        .into_iter()
        .filter(|(_, f)| !is_empty(f))
        .map(|(name, f)| {
            let body = toml::to_string_pretty(&f).map_err(|e| GraphError::Invalid(format!("rendering {name}: {e}")))?;
            Ok((name, format!("# Exported by `aisle kg export`; the format is described in README.md.\n\n{body}")))
        })
        .collect()
}

fn is_empty(f: &File) -> bool {
    f.category.is_empty()
        && f.brand.is_empty()
        && f.key.is_empty()
        && f.attribute.is_empty()
        && f.concept.is_empty()
        && f.policy.is_empty()
        && f.complements.is_empty()
        && f.substitutes.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_copy_is_the_repository_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge/graph");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let built_in: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            on_disk, built_in,
            "add new knowledge/graph files to BUILTIN"
        );
        assert_eq!(builtin().unwrap(), read_dir(&dir).unwrap());
    }
}
