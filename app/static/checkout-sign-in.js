/* /checkout sign-in: a pairing link opened on the till (…/checkout#pair=CODE) or a pairing QR scanned with the
   camera fills the code in and signs in. The fragment never reaches the server or its logs. */
(function () {
  "use strict";
  var form = document.getElementById("sign-in-form");
  var field = document.getElementById("credential");
  var button = document.getElementById("scan-pairing");
  var note = document.getElementById("camera-note");
  var video = document.getElementById("camera");
  var scanner = window.PunchpassScanner;

  function pairingCode(text) {
    var at = text.lastIndexOf("pair=");
    return (at >= 0 ? text.slice(at + 5) : text).trim();
  }

  function signInWith(text) {
    field.value = pairingCode(text);
    form.submit();
  }

  var fragment = window.location.hash.slice(1);
  if (fragment.indexOf("pair=") === 0) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
    if (!document.getElementById("sign-in-error")) signInWith(fragment);
  }

  function say(text) {
    note.textContent = text;
    note.hidden = false;
  }

  button.addEventListener("click", async function () {
    if (scanner.running()) {
      scanner.stop();
      button.textContent = button.dataset.start;
      return;
    }
    if (scanner.cameraProblem()) {
      say(button.dataset.insecure);
      return;
    }
    try {
      button.textContent = button.dataset.stop;
      await scanner.start(video, signInWith);
    } catch (error) {
      button.textContent = button.dataset.start;
      say(button.dataset.failed.replace("{reason}", error.name || String(error)));
    }
  });
})();
