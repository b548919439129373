// The Training tab's draft editor: a plain monospace textarea with a gutter of line numbers
// and the caret's line and column under it, so "nlu/bikes.yml, line 6" from validation can
// be found (and is opened there: goToLine). No editor library: the page loads nothing from
// elsewhere, and Rasa's YAML needs only lines and spaces.
//
// Lines never wrap (wrap="off"): a wrapped line would put the gutter's numbers out of step
// with the text. The gutter is text (aria-hidden: a screen reader hears the caret's line
// from the status under the field instead) and follows the textarea's scrolling.

import { el } from "./api.js";

export class DraftEditor {
  /** `area`: the textarea; `gutter`: an element beside it for the numbers; `caret`: where
   * "Line 3, column 7" is written. */
  constructor(area, gutter, caret) {
    this.area = area;
    this.gutter = gutter;
    this.caret = caret;
    this.saved = "";
    this.lines = 0;
    area.addEventListener("input", () => this.refresh());
    area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });
    for (const name of ["keyup", "click", "select", "focus"]) {
      area.addEventListener(name, () => this.showCaret());
    }
    area.addEventListener("keydown", (event) => this.keys(event));
  }

  /** Shows `text` as the draft's stored content (nothing unsaved). */
  load(text) {
    this.area.value = text;
    this.saved = text;
    this.area.scrollTop = 0;
    this.area.setSelectionRange(0, 0);
    this.refresh();
  }

  /** The text now stored: what `dirty` compares with. */
  markSaved(text = this.area.value) {
    this.saved = text;
  }

  get dirty() {
    return this.area.value !== this.saved;
  }

  refresh() {
    const count = this.area.value.split("\n").length;
    if (count !== this.lines) {
      this.lines = count;
      this.gutter.replaceChildren(...Array.from({ length: count },
        (_, i) => el("span", {}, String(i + 1))));
    }
    this.gutter.scrollTop = this.area.scrollTop;
    this.showCaret();
  }

  /** [line, column], both 1-based, of the caret. */
  position() {
    const before = this.area.value.slice(0, this.area.selectionStart);
    const line = before.split("\n").length;
    return [line, before.length - before.lastIndexOf("\n")];
  }

  showCaret() {
    const [line, column] = this.position();
    this.caret.textContent = `Line ${line}, column ${column}`;
  }

  /** Puts the caret at the start of `line` (its text selected), scrolled into view. */
  goToLine(line) {
    const lines = this.area.value.split("\n");
    const at = Math.min(Math.max(1, line), lines.length);
    const start = lines.slice(0, at - 1).reduce((sum, text) => sum + text.length + 1, 0);
    this.area.focus();
    this.area.setSelectionRange(start, start + lines[at - 1].length);
    const height = parseFloat(getComputedStyle(this.area).lineHeight) || 20;
    this.area.scrollTop = Math.max(0, (at - 3) * height);
    this.gutter.scrollTop = this.area.scrollTop;
    this.showCaret();
  }

  /** Tab indents by two spaces as YAML wants (Shift+Tab and Escape leave the field, so the
   * keyboard is never trapped: Escape first, then Tab moves on). */
  keys(event) {
    if (event.key === "Escape") {
      this.escaped = true;
      return;
    }
    if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.altKey || this.escaped) {
      this.escaped = false;
      return;
    }
    event.preventDefault();
    this.area.setRangeText("  ", this.area.selectionStart, this.area.selectionEnd, "end");
    this.refresh();
  }
}
