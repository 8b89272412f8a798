//! The inheritance graph of targets: which target imports which, in what order they run.
//!
//! Pure and synchronous. Built on petgraph; cycles are reported whole (`A -> B -> C -> A`,
//! starting at the alphabetically first target of the cycle, following imports), so the same
//! config gives the same message on every run. Levels are numbered from 1: a target that
//! imports no other target is level 1, and every other target sits one level below the deepest
//! target it imports. Sources are level 0.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::suggest;

/// An import cycle, closed: the first name is repeated at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<String>);

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" -> "))
    }
}

/// Errors from building or querying the graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// One or more import cycles (each listed once, sorted).
    #[error("import cycle{}: {}", if .0.len() > 1 { "s" } else { "" }, .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Cycles(Vec<Cycle>),
    /// `--targets` named targets that do not exist.
    #[error("{}", unknown_targets_message(.unknown, .valid))]
    UnknownTargets {
        /// The names that matched nothing.
        unknown: Vec<String>,
        /// Every valid target name, sorted.
        valid: Vec<String>,
    },
}

fn unknown_targets_message(unknown: &[String], valid: &[String]) -> String {
    let names: Vec<String> = unknown
        .iter()
        .map(|u| format!("`{u}`{}", suggest::did_you_mean(u, valid.iter().map(String::as_str))))
        .collect();
    format!(
        "unknown target{} {}; valid targets: {}",
        if unknown.len() > 1 { "s" } else { "" },
        names.join(", "),
        valid.join(", ")
    )
}

/// Targets and their target imports, with levels computed.
#[derive(Debug, Clone)]
pub struct TargetGraph {
    parents: BTreeMap<String, Vec<String>>,
    children: BTreeMap<String, BTreeSet<String>>,
    levels: BTreeMap<String, usize>,
}

impl TargetGraph {
    /// Builds the graph from each target's imports that are targets, in import order.
    /// Every imported name must itself be a key of `target_imports`.
    pub fn new(target_imports: &BTreeMap<String, Vec<String>>) -> Result<Self, GraphError> {
        let mut graph: DiGraph<&str, ()> = DiGraph::new();
        let index: BTreeMap<&str, NodeIndex> = target_imports
            .keys()
            .map(|name| (name.as_str(), graph.add_node(name.as_str())))
            .collect();
        for (child, imports) in target_imports {
            for parent in imports {
                if let Some(&p) = index.get(parent.as_str()) {
                    graph.update_edge(index[child.as_str()], p, ());
                }
            }
        }

        let mut cycles: Vec<Cycle> = tarjan_scc(&graph)
            .into_iter()
            .filter(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
            .map(|scc| shortest_cycle(target_imports, &scc.iter().map(|&i| graph[i]).collect()))
            .collect();
        if !cycles.is_empty() {
            cycles.sort_by(|a, b| a.0.cmp(&b.0));
            return Err(GraphError::Cycles(cycles));
        }

        let mut parents = BTreeMap::new();
        let mut children: BTreeMap<String, BTreeSet<String>> =
            target_imports.keys().map(|k| (k.clone(), BTreeSet::new())).collect();
        for (child, imports) in target_imports {
            let mut seen = BTreeSet::new();
            let ps: Vec<String> = imports
                .iter()
                .filter(|p| target_imports.contains_key(*p) && seen.insert(p.as_str()))
                .cloned()
                .collect();
            for p in &ps {
                children.get_mut(p).map(|c| c.insert(child.clone()));
            }
            parents.insert(child.clone(), ps);
        }
        let mut levels = BTreeMap::new();
        for name in target_imports.keys() {
            level_of(name, &parents, &mut levels);
        }
        Ok(Self {
            parents,
            children,
            levels,
        })
    }

    /// Every target name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parents.keys().map(String::as_str)
    }

    /// Whether `name` is a target.
    pub fn contains(&self, name: &str) -> bool {
        self.parents.contains_key(name)
    }

    /// The level of a target (1 = imports no target).
    pub fn level(&self, name: &str) -> usize {
        self.levels.get(name).copied().unwrap_or(1)
    }

    /// The targets `name` imports, in import order.
    pub fn parents(&self, name: &str) -> &[String] {
        self.parents.get(name).map_or(&[], Vec::as_slice)
    }

    /// The targets that import `name`, sorted.
    pub fn children(&self, name: &str) -> impl Iterator<Item = &str> {
        self.children.get(name).into_iter().flatten().map(String::as_str)
    }

    /// Targets grouped by level: element 0 holds level 1, each group sorted by name.
    pub fn levels(&self) -> Vec<Vec<String>> {
        let depth = self.levels.values().copied().max().unwrap_or(0);
        let mut out = vec![Vec::new(); depth];
        for (name, level) in &self.levels {
            out[level - 1].push(name.clone());
        }
        out
    }

    /// The execution order: by level, then by name.
    pub fn order(&self) -> Vec<String> {
        self.levels().into_iter().flatten().collect()
    }

    /// The requested targets plus every target they inherit from, transitively.
    /// Unknown names are an error that lists the valid ones.
    pub fn with_ancestors<'a, I>(&self, requested: I) -> Result<BTreeSet<String>, GraphError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut unknown = Vec::new();
        let mut out = BTreeSet::new();
        let mut queue = VecDeque::new();
        for name in requested {
            if self.contains(name) {
                queue.push_back(name.to_owned());
            } else if !unknown.iter().any(|u| u == name) {
                unknown.push(name.to_owned());
            }
        }
        if !unknown.is_empty() {
            return Err(GraphError::UnknownTargets {
                unknown,
                valid: self.names().map(str::to_owned).collect(),
            });
        }
        while let Some(name) = queue.pop_front() {
            if out.insert(name.clone()) {
                queue.extend(self.parents(&name).iter().cloned());
            }
        }
        Ok(out)
    }

    /// Groups of targets connected by inheritance (in either direction), each sorted, the
    /// groups ordered by their first name.
    pub fn components(&self) -> Vec<BTreeSet<String>> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for start in self.names() {
            if seen.contains(start) {
                continue;
            }
            let mut component = BTreeSet::new();
            let mut queue = VecDeque::from([start.to_owned()]);
            while let Some(name) = queue.pop_front() {
                if !component.insert(name.clone()) {
                    continue;
                }
                queue.extend(self.parents(&name).iter().cloned());
                queue.extend(self.children(&name).map(str::to_owned));
            }
            seen.extend(component.iter().cloned());
            out.push(component);
        }
        out
    }

    /// The targets of shard `index` of `count` (0-based): whole inheritance groups, assigned by a
    /// stable hash of the group's first name, so that N jobs split the work the same way on every
    /// machine and a parent is always merged in the same job as its children.
    pub fn shard(&self, index: u32, count: u32) -> BTreeSet<String> {
        self.components()
            .into_iter()
            .filter(|c| {
                let first = c.iter().next().map_or("", String::as_str);
                stable_hash(first) % u64::from(count.max(1)) == u64::from(index)
            })
            .flatten()
            .collect()
    }
}

/// FNV-1a: a fixed, platform-independent hash (std's hasher is randomly seeded).
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn level_of(name: &str, parents: &BTreeMap<String, Vec<String>>, memo: &mut BTreeMap<String, usize>) -> usize {
    if let Some(&level) = memo.get(name) {
        return level;
    }
    let level = 1 + parents
        .get(name)
        .into_iter()
        .flatten()
        .map(|p| level_of(p, parents, memo))
        .max()
        .unwrap_or(0);
    memo.insert(name.to_owned(), level);
    level
}

/// The shortest cycle through the alphabetically first member of a strongly connected
/// component, following imports in name order: deterministic and easy to read.
fn shortest_cycle(imports: &BTreeMap<String, Vec<String>>, members: &BTreeSet<&str>) -> Cycle {
    let start = *members.iter().next().expect("a component has members");
    let next = |name: &str| -> Vec<&str> {
        let mut targets: Vec<&str> = imports
            .get(name)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|p| members.contains(p))
            .collect();
        targets.sort_unstable();
        targets.dedup();
        targets
    };
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for n in next(node) {
            if n == start {
                let mut path = vec![start.to_owned()];
                let mut cursor = node;
                let mut back = Vec::new();
                while cursor != start {
                    back.push(cursor.to_owned());
                    cursor = came_from[cursor];
                }
                path.extend(back.into_iter().rev());
                path.push(start.to_owned());
                return Cycle(path);
            }
            if n != start && !came_from.contains_key(n) {
                came_from.insert(n, node);
                queue.push_back(n);
            }
        }
    }
    Cycle(vec![start.to_owned(), start.to_owned()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Result<TargetGraph, GraphError> {
        let map = edges
            .iter()
            .map(|(t, ps)| ((*t).to_owned(), ps.iter().map(|p| (*p).to_owned()).collect()))
            .collect();
        TargetGraph::new(&map)
    }

    #[test]
    fn levels_and_order() {
        let g = graph(&[
            ("Stg", &[]),
            ("Prod", &["Stg"]),
            ("Demo", &["Prod"]),
            ("Alpha", &[]),
            ("Both", &["Stg", "Alpha"]),
        ])
        .unwrap();
        assert_eq!(
            g.levels(),
            vec![vec!["Alpha", "Stg"], vec!["Both", "Prod"], vec!["Demo"]]
        );
        assert_eq!(g.order(), ["Alpha", "Stg", "Both", "Prod", "Demo"]);
        assert_eq!(g.children("Stg").collect::<Vec<_>>(), ["Both", "Prod"]);
    }

    #[test]
    fn cycles_are_reported_whole_and_deterministically() {
        let err = graph(&[("C", &["A"]), ("A", &["B"]), ("B", &["C"]), ("D", &[])]).unwrap_err();
        assert_eq!(err.to_string(), "import cycle: A -> B -> C -> A");
        let err = graph(&[("Staging", &["Production"]), ("Production", &["Staging"])]).unwrap_err();
        assert_eq!(err.to_string(), "import cycle: Production -> Staging -> Production");
        let err = graph(&[("A", &["A"])]).unwrap_err();
        assert_eq!(err.to_string(), "import cycle: A -> A");
        let err = graph(&[("A", &["B"]), ("B", &["A"]), ("X", &["Y"]), ("Y", &["X"])]).unwrap_err();
        assert_eq!(err.to_string(), "import cycles: A -> B -> A; X -> Y -> X");
    }

    #[test]
    fn shortest_cycle_is_chosen_inside_a_larger_component() {
        let err = graph(&[("A", &["B", "C"]), ("B", &["C"]), ("C", &["A"])]).unwrap_err();
        assert_eq!(err.to_string(), "import cycle: A -> C -> A");
    }

    #[test]
    fn selection_includes_ancestors_and_rejects_unknown_names() {
        let g = graph(&[("Stg", &[]), ("Prod", &["Stg"]), ("Other", &[])]).unwrap();
        assert_eq!(
            g.with_ancestors(["Prod"]).unwrap().into_iter().collect::<Vec<_>>(),
            ["Prod", "Stg"]
        );
        let err = g.with_ancestors(["Prodution", "Prod", "nope"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown targets `Prodution` (did you mean `Prod`?), `nope`; valid targets: Other, Prod, Stg"
        );
    }

    #[test]
    fn shards_cover_every_target_once_and_keep_chains_together() {
        let edges: Vec<(String, Vec<String>)> = (0..40)
            .map(|i| {
                let parents = if i % 3 == 0 {
                    vec![]
                } else {
                    vec![format!("t{:02}", i - i % 3)]
                };
                (format!("t{i:02}"), parents)
            })
            .collect();
        let g = TargetGraph::new(&edges.into_iter().collect()).unwrap();
        for n in 1..5 {
            let shards: Vec<_> = (0..n).map(|i| g.shard(i, n)).collect();
            let total: usize = shards.iter().map(BTreeSet::len).sum();
            assert_eq!(total, 40, "every target in exactly one of {n} shards");
            for shard in &shards {
                for name in shard {
                    for parent in g.parents(name) {
                        assert!(shard.contains(parent), "{name} and its parent {parent} split");
                    }
                }
            }
        }
        assert_eq!(
            stable_hash("Production"),
            0xb150_99c4_5ca2_861a,
            "hash must never change"
        );
    }
}
