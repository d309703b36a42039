/* Camera QR scanning for Punchpass pages: the browser's BarcodeDetector where it reads QR codes, otherwise the
   vendored jsQR (static/vendor/jsqr) on frames drawn to a canvas. Browsers give the camera only to secure
   origins (https, or localhost): `cameraProblem()` says why there is none, so the page can explain it. */
(function () {
  "use strict";

  var FRAME_INTERVAL_MS = 80;
  var MAX_FRAME_WIDTH = 640;  // jsQR's time grows with pixels; a card's QR fills enough of a 640px frame

  function cameraProblem() {
    if (!window.isSecureContext) return "insecure";
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return "unsupported";
    return null;
  }

  async function makeDetector() {
    if (!("BarcodeDetector" in window)) return null;
    try {
      var formats = await window.BarcodeDetector.getSupportedFormats();
      return formats.indexOf("qr_code") >= 0 ? new window.BarcodeDetector({formats: ["qr_code"]}) : null;
    } catch (error) {
      return null;
    }
  }

  /* Start the camera in `video` and call `onCode(text)` once, for the first QR code seen; then it stops.
     Rejects with the browser's error (NotAllowedError, NotFoundError, ...) when no camera opens. */
  async function start(video, onCode) {
    stop();
    var stream = await navigator.mediaDevices.getUserMedia({audio: false, video: {facingMode: "environment"}});
    var detector = await makeDetector();
    var canvas = document.createElement("canvas");
    var context = canvas.getContext("2d", {willReadFrequently: true});
    var session = {stream: stream, video: video, timer: null};
    active = session;
    video.srcObject = stream;
    video.hidden = false;
    await video.play();

    async function decode() {
      if (active !== session) return;
      var text = null;
      if (video.readyState >= 2 && video.videoWidth) {
        text = detector ? await detectWith(detector, video) : readWithJsQR(video, canvas, context);
      }
      if (active !== session) return;
      if (text) {
        stop();
        onCode(text);
      } else {
        session.timer = setTimeout(decode, FRAME_INTERVAL_MS);
      }
    }
    decode();
  }

  async function detectWith(detector, video) {
    try {
      var codes = await detector.detect(video);
      return codes.length ? codes[0].rawValue : null;
    } catch (error) {
      return null;
    }
  }

  function readWithJsQR(video, canvas, context) {
    var scale = Math.min(1, MAX_FRAME_WIDTH / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    var frame = context.getImageData(0, 0, canvas.width, canvas.height);
    var code = window.jsQR(frame.data, frame.width, frame.height, {inversionAttempts: "dontInvert"});
    return code && code.data ? code.data : null;
  }

  var active = null;

  function stop() {
    var session = active;
    active = null;
    if (!session) return;
    clearTimeout(session.timer);
    session.stream.getTracks().forEach(function (track) { track.stop(); });
    session.video.srcObject = null;
    session.video.hidden = true;
  }

  function running() { return active !== null; }

  window.PunchpassScanner = {start: start, stop: stop, running: running, cameraProblem: cameraProblem};
})();
