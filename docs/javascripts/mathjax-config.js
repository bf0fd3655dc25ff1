// MathJax 2 (the copy the jupyter-server-mathjax package installs, served from assets/mathjax/): read before MathJax.js
// loads. pymdownx.arithmatex writes \( \) and \[ \]; the notebooks' own config block adds $ $ on their pages.
window.MathJax = {
  config: ["TeX-AMS-MML_HTMLorMML-full.js"],
  tex2jax: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true},
  // the package ships one web font, STIX-Web (as the Jupyter notebook configures it)
  // MathJax_Blank is its font-detection fallback, declared as url('about:blank'), which Chrome refuses with a console
  // error; a local() name that no system has is as blank and loads nothing.
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
               styles: {"@font-face": {"font-family": "MathJax_Blank", src: "local('dlf-no-such-font')"}}},
  // The hidden MathML copy for screen readers styles \mathcal and \mathbb with MathJax's TeX fonts, which the package
  // does not ship (a 404 per page that uses them); the typeset HTML keeps its data-mathml attribute.
  menuSettings: {assistiveMML: false},
  messageStyle: "none",
  showMathMenu: false
};
