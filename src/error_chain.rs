//! An error's `source()` chain as text: the one flattener, a leaf every layer may use (the
//! stores for SDK errors, discovery, the metrics exporter, [`crate::failure`]).

/// An error and its sources as texts, outermost first, each once (a cause whose text an earlier
/// one already contains is left out; libraries often repeat their source in their message).
pub fn causes(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts
}

/// [`causes`] on one line: `dispatch failure: connection refused`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    causes(err).join(": ")
}
