//! The `{{ ... }}` reference syntax that `dispatch-inputs` and the system
//! manifest share (it does not collide with GitHub's `${{ }}`): where
//! each reference is and what it says. What a reference may name is each
//! user's business.

/// The references between `{{` and `}}` of `text`: where each starts and
/// ends (the braces included), and what it says, trimmed. An unclosed
/// `{{` ends the search: the rest is text.
pub fn references(text: &str) -> Vec<(usize, usize, &str)> {
    let mut found = Vec::new();
    let mut offset = 0;
    while let Some(start) = text[offset..].find("{{") {
        let start = offset + start;
        let Some(length) = text[start..].find("}}") else {
            break;
        };
        let end = start + length + 2;
        found.push((start, end, text[start + 2..end - 2].trim()));
        offset = end;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_with_their_places_and_trimmed() {
        let text = "a={{ outputs.X }}/{{stacks.n.outputs.Y}} {{ open";
        assert_eq!(
            references(text),
            vec![(2, 17, "outputs.X"), (18, 40, "stacks.n.outputs.Y")]
        );
        assert_eq!(&text[2..17], "{{ outputs.X }}");
        assert_eq!(&text[18..40], "{{stacks.n.outputs.Y}}");
        assert!(references("no reference").is_empty());
    }
}
