//! The pictures a run keeps: a confusion matrix for classifiers, residuals against predictions
//! for regressors, as standalone SVG (the UI shows artifacts of that type inline).

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Counts of (true, predicted) class as a shaded grid with the counts written in.
pub fn confusion_matrix_svg(title: &str, classes: &[String], counts: &[u64]) -> String {
    let k = classes.len().max(1);
    let cell = if k <= 6 { 64 } else { (480 / k).max(16) };
    let (left, top) = (120, 70);
    let width = left + cell * k + 30;
    let height = top + cell * k + 50;
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">predicted class</text>\n\
         <text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">true class</text>\n",
        escape(title),
        left + cell * k / 2,
        top - 30,
        top + cell * k / 2,
        top + cell * k / 2,
    );
    for (i, class) in classes.iter().enumerate() {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            left + i * cell + cell / 2,
            top - 8,
            escape(class)
        ));
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            left - 8,
            top + i * cell + cell / 2 + 4,
            escape(class)
        ));
    }
    for t in 0..k {
        for p in 0..k {
            let n = counts.get(t * k + p).copied().unwrap_or(0);
            let shade = 1.0 - 0.8 * (n as f64 / max);
            let level = (255.0 * shade) as u8;
            let ink = if shade < 0.5 { "white" } else { "black" };
            svg.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb({level},{level},255)\" stroke=\"#ccc\"/>\n\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{ink}\">{n}</text>\n",
                left + p * cell,
                top + t * cell,
                left + p * cell + cell / 2,
                top + t * cell + cell / 2 + 4,
            ));
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Residuals (truth - prediction) against predictions, with the zero line.
pub fn residuals_svg(title: &str, predicted: &[f64], truth: &[f64]) -> String {
    let (width, height, margin) = (560.0, 380.0, 50.0);
    let residuals: Vec<f64> = truth.iter().zip(predicted).map(|(t, p)| t - p).collect();
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (lo.min(0.0) - 1.0, hi.max(0.0) + 1.0)
        }
    };
    let (x_lo, x_hi) = range(predicted);
    let bound = residuals
        .iter()
        .fold(0.0f64, |m, r| m.max(r.abs()))
        .max(1e-12);
    let x = |v: f64| margin + (v - x_lo) / (x_hi - x_lo) * (width - 2.0 * margin);
    let y = |r: f64| height / 2.0 - r / bound * (height / 2.0 - margin);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{margin}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>\n\
         <line x1=\"{margin}\" y1=\"{mid}\" x2=\"{}\" y2=\"{mid}\" stroke=\"#888\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">prediction ({x_lo:.3} to {x_hi:.3})</text>\n\
         <text x=\"14\" y=\"{mid}\" transform=\"rotate(-90 14 {mid})\" text-anchor=\"middle\">residual (±{bound:.3})</text>\n",
        escape(title),
        width - margin,
        width / 2.0,
        height - 12.0,
        mid = height / 2.0,
    );
    // Thousands of points are enough to see a pattern; more only make the file heavy.
    let step = (predicted.len() / 5000).max(1);
    for (p, r) in predicted.iter().zip(&residuals).step_by(step) {
        svg.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"#36c\" fill-opacity=\"0.5\"/>\n",
            x(*p),
            y(*r)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_svg_with_their_numbers() {
        let svg = confusion_matrix_svg("m <1>", &["a".into(), "b".into()], &[5, 1, 2, 7]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains(">7</text>") && svg.contains("m &lt;1&gt;"));
        let svg = residuals_svg("r", &[1.0, 2.0, 3.0], &[1.5, 1.0, 3.0]);
        assert_eq!(svg.matches("<circle").count(), 3);
    }
}
