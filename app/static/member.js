// The member page's referral link: the phone's share sheet where there is one (Web Share API), else a copy.
"use strict";
(function () {
  const link = document.getElementById("referral-link");
  const share = document.getElementById("share");
  const copy = document.getElementById("copy");
  const note = document.getElementById("share-note");
  if (!link || !share || !copy) return;

  function say(text) {
    note.textContent = text;
    note.hidden = false;
  }

  async function copyLink() {
    try {
      await navigator.clipboard.writeText(link.value);
    } catch (error) { // no clipboard permission (or plain http): select it so one more tap copies
      link.focus();
      link.select();
      document.execCommand("copy");
    }
    say(copy.dataset.copied);
  }

  share.addEventListener("click", async () => {
    if (!navigator.share) return copyLink();
    try {
      await navigator.share({ title: share.dataset.title, text: share.dataset.text, url: link.value });
    } catch (error) {
      if (error.name !== "AbortError") copyLink();
    }
  });
  copy.addEventListener("click", copyLink);
})();
