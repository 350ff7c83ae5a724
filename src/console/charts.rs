//! Charts drawn on the server as SVG: no script, readable without colour (every bar carries its
//! value as text and a title), scaled to the largest value.

/// Escapes text for SVG/HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar chart of `(label, value)` pairs, titled `title`, as an SVG element.
pub fn bars(title: &str, data: &[(String, f64)]) -> String {
    const HEIGHT: f64 = 120.0;
    const BAR: f64 = 28.0;
    const GAP: f64 = 10.0;
    let width = (data.len() as f64 * (BAR + GAP) + GAP).max(160.0);
    let most = data.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{title}\" viewBox=\"0 0 {width} {total}\" width=\"{width}\" height=\"{total}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{title}</title>",
        title = escape(title),
        total = HEIGHT + 36.0,
    );
    if data.is_empty() {
        svg.push_str("<text x=\"8\" y=\"60\" fill=\"#444\" font-size=\"12\">no runs yet</text>");
    }
    for (i, (label, value)) in data.iter().enumerate() {
        let x = GAP + i as f64 * (BAR + GAP);
        let h = if most > 0.0 {
            value / most * HEIGHT
        } else {
            0.0
        };
        let y = 14.0 + HEIGHT - h;
        svg.push_str(&format!(
            "<g><title>{label}: {value}</title><rect x=\"{x}\" y=\"{y:.1}\" width=\"{BAR}\" height=\"{h:.1}\" fill=\"#1f5fa8\"/>\
             <text x=\"{cx}\" y=\"{ty:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#222\">{value}</text>\
             <text x=\"{cx}\" y=\"{ly}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#222\">{label}</text></g>",
            label = escape(label),
            value = value,
            cx = x + BAR / 2.0,
            ty = (y - 2.0).max(10.0),
            ly = HEIGHT + 30.0,
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let svg = bars(
            "calls <per> day",
            &[("a&b".to_owned(), 50.0), ("c".to_owned(), 100.0)],
        );
        assert!(svg.contains("aria-label=\"calls &lt;per&gt; day\""));
        assert!(svg.contains("a&amp;b"));
        assert!(svg.contains("height=\"60.0\""), "{svg}");
        assert!(svg.contains("height=\"120.0\""), "{svg}");
        assert!(bars("empty", &[]).contains("no runs yet"));
    }
}
