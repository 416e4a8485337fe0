//! A minimal XML reader for AWS's query-protocol answers (STS, and Lambda's error bodies):
//! quick-xml checks and parses, this keeps only what the answers are read by.

/// An XML document reduced to what the STS and Lambda answers are read by: each element's
/// parent, local name, namespace check and leading text, in document order. quick-xml
/// parses (well-formedness, namespaces, references); this only records.
pub(crate) struct XmlElements {
    elements: Vec<XmlElement>,
}

struct XmlElement {
    parent: Option<usize>,
    name: String,
    /// In the document's namespace or none.
    in_namespace: bool,
    /// The element's text when its first child node is text (not an element, comment or PI).
    text: Option<String>,
    /// Whether text still extends `text` (no other child yet).
    collecting: bool,
    has_children: bool,
}

impl XmlElements {
    /// The elements of `text`, or None when it is not one well-formed XML document.
    /// `expected_namespace`: the one namespace (besides none) whose elements `child` finds.
    pub(crate) fn parse(text: &str, expected_namespace: &str) -> Option<XmlElements> {
        use quick_xml::events::Event;
        use quick_xml::name::ResolveResult;

        let mut reader = quick_xml::NsReader::from_str(text);
        let mut elements: Vec<XmlElement> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        let mut first_event = true;
        loop {
            let (namespace, event) = reader.read_resolved_event().ok()?;
            let in_namespace = match namespace {
                ResolveResult::Unbound => true,
                ResolveResult::Bound(ns) => ns.into_inner() == expected_namespace,
                ResolveResult::Unknown(_) => return None,
            };
            let is_first = std::mem::replace(&mut first_event, false);
            let current = open.last().copied();
            let piece: Option<std::borrow::Cow<'_, str>> = match &event {
                Event::Text(t) => Some(t.xml10_content()),
                Event::CData(t) => Some(t.xml10_content()),
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref().ok()? {
                        Some(c) => c.to_string(),
                        None => quick_xml::escape::resolve_predefined_entity(r)?.to_string(),
                    };
                    Some(resolved.into())
                }
                _ => None,
            };
            // Characters XML 1.0 forbids; quick-xml does not check them.
            let forbidden = |c: char| {
                (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}' || c == '\u{ffff}'
            };
            if piece.as_ref().is_some_and(|p| p.chars().any(forbidden)) {
                return None;
            }
            match (current, piece) {
                (Some(i), Some(piece)) => {
                    let element = &mut elements[i];
                    if !element.has_children {
                        element.has_children = true;
                        element.collecting = true;
                        element.text = Some(String::new());
                    }
                    if element.collecting {
                        if let Some(text) = &mut element.text {
                            text.push_str(&piece);
                        }
                    }
                    continue;
                }
                // Outside the root only white space may be.
                (None, Some(piece)) => {
                    if matches!(event, Event::Text(_)) && piece.trim_ascii().is_empty() {
                        continue;
                    }
                    return None;
                }
                (Some(i), None) => {
                    if !matches!(event, Event::End(_)) {
                        elements[i].has_children = true;
                        elements[i].collecting = false;
                    }
                }
                (None, None) => {}
            }
            match event {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    if current.is_none() && !elements.is_empty() {
                        return None;
                    }
                    for attribute in e.attributes() {
                        let attribute = attribute.ok()?;
                        let (namespace, _) = reader.resolver().resolve_attribute(attribute.key);
                        if matches!(namespace, ResolveResult::Unknown(_)) {
                            return None;
                        }
                    }
                    let name = e.local_name().into_inner().to_string();
                    elements.push(XmlElement {
                        parent: current,
                        name,
                        in_namespace,
                        text: None,
                        collecting: false,
                        has_children: false,
                    });
                    if matches!(event, Event::Start(_)) {
                        open.push(elements.len() - 1);
                    }
                }
                Event::End(_) => {
                    open.pop()?;
                }
                Event::Decl(_) if !is_first => return None,
                Event::DocType(_) if !elements.is_empty() => return None,
                Event::Eof => break,
                _ => {}
            }
        }
        (open.is_empty() && !elements.is_empty()).then_some(XmlElements { elements })
    }

    /// The root element.
    pub(crate) fn root(&self) -> usize {
        0
    }

    pub(crate) fn is_named(&self, node: usize, name: &str) -> bool {
        self.elements
            .get(node)
            .is_some_and(|e| e.in_namespace && e.name == name)
    }

    /// The first child element of `node` named `name`, in the document's namespace or none.
    pub(crate) fn child(&self, node: usize, name: &str) -> Option<usize> {
        self.elements
            .iter()
            .enumerate()
            .find(|(i, e)| e.parent == Some(node) && self.is_named(*i, name))
            .map(|(i, _)| i)
    }

    pub(crate) fn text(&self, node: usize) -> Option<&str> {
        self.elements.get(node)?.text.as_deref()
    }

    /// The text of the first element with local name `name`, in any namespace.
    pub(crate) fn first_text(&self, name: &str) -> Option<&str> {
        self.elements
            .iter()
            .find(|e| e.name == name)?
            .text
            .as_deref()
    }

    pub(crate) fn trimmed_text(&self, node: Option<usize>) -> Option<&str> {
        node.and_then(|n| self.text(n))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}
