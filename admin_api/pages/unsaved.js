// Work on a page that is not saved yet (a training draft, a text, the settings form, a reply
// being written), one way for every page: each part that holds such edits says what they are
// (`trackUnsaved`), and leaving the page (closing, reloading, another address: the browser's
// own question) or logging out (`mayLogOut`: a confirm naming them) asks first. Logging out
// used to drop them without a word.

const parts = []; // functions returning what is unsaved, in words: ["the draft nlu/x.yml"]
let signedIn = () => true;

/** `describe()`: what this part holds unsaved, in words (an empty list: nothing). */
export function trackUnsaved(describe) {
  parts.push(describe);
}

/** Everything unsaved on the page now (nothing once logged out). */
export function unsavedWork() {
  return signedIn() ? parts.flatMap((describe) => describe()) : [];
}

/** True when nothing is unsaved, or the person lets it go. */
export function mayLogOut() {
  const unsaved = unsavedWork();
  return !unsaved.length || window.confirm(`Log out? Not saved yet: ${unsaved.join("; ")}. `
    + "Logging out loses it.");
}

/** The page asks before it is left while something is unsaved; `isIn()`: someone is logged
 * in (after a logout what the forms still hold is no one's work). */
export function guardLeaving(isIn) {
  signedIn = isIn;
  window.addEventListener("beforeunload", (event) => {
    if (!unsavedWork().length) return;
    event.preventDefault(); // the browser asks whether to leave
    event.returnValue = ""; // (the older way of asking it)
  });
}
