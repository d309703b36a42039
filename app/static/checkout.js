/* The till's screen on /checkout. Every action is a call to the merchant API with the session cookie and the
   X-CSRF-Token header (the key never reaches this page), and every write carries an Idempotency-Key made when
   the action starts: a double tap or a retry after a lost answer sends the same key, the server charges once
   and marks the replay (Idempotent-Replayed: true), and the page says "already done". */
(function () {
  "use strict";

  var boot = JSON.parse(document.getElementById("boot").textContent);
  var scanner = window.PunchpassScanner;
  var numbers = new Intl.NumberFormat(boot.locale);
  var times = new Intl.DateTimeFormat(boot.locale, {hour: "numeric", minute: "2-digit"});
  var UNDO_SECONDS = 60;

  var state = {
    member: null,        // the lookup answer on screen
    code: null,          // what found it (scanned or typed), to look the member up again after a change
    amount: "",          // typed on the keypad
    earnKey: null,       // Idempotency-Key of the earn being typed: made at the first key press
    pending: null,       // the redeem waiting for confirmation: {reward, key, hold}
    last: null,          // the last charge, for undo: {transactionId, at}
    undoTimer: null,
  };

  function $(id) { return document.getElementById(id); }

  function t(key, values) {
    var text = boot.strings[key] || key;
    Object.keys(values || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(values[name]));
    });
    return text;
  }

  function n(value) { return numbers.format(value); }

  /* A random key that works on plain http too (crypto.randomUUID needs a secure context). */
  function newKey() {
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  // ---- talking to the API -------------------------------------------------------------------------------

  function PageError(message, problem, status) {
    this.message = message;
    this.problem = problem || {};
    this.status = status || 0;
  }

  async function api(method, path, body, idempotencyKey, explain) {
    var headers = {"Accept": "application/json", "X-CSRF-Token": boot.csrf};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    var response;
    try {
      response = await fetch(path, {method: method, headers: headers, credentials: "same-origin", cache: "no-store",
                                    body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (error) {
      throw new PageError(t("error.network"));
    }
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new PageError(sentence(response, data, explain || {}), data, response.status);
    return {data: data, replayed: response.headers.get("Idempotent-Replayed") === "true"};
  }

  /* A problem+json answer as a sentence for the person at the till; `explain` words the cases that depend on
     what they were doing (a code that matches no card, too few points for this reward). */
  function sentence(response, problem, explain) {
    var status = response.status;
    if (explain[status]) {
      var worded = explain[status](problem);
      if (worded) return worded;
    }
    if (status === 401) return t("error.signed_out");
    if (status === 403) return t("error.forbidden");
    if (status === 429) return t("error.too_many", {seconds: response.headers.get("Retry-After") || "60"});
    if (status === 422 || status === 400) {
      var fields = Object.keys(problem.errors || {});
      return fields.length ? t("error.invalid", {fields: fields.join(", ")}) : t("error.server");
    }
    if (status === 409 || status === 404) return t("error.conflict", {detail: problem.detail || problem.title || ""});
    return t("error.server");
  }

  // ---- messages -----------------------------------------------------------------------------------------

  function show(kind, text, replayed, receipt) {
    var status = $("status");
    status.className = "status " + kind;
    status.textContent = text;
    if (receipt) {  // the API's one-line receipt, in the member's language, for the till to print or read out
      var line = document.createElement("span");
      line.className = "receipt";
      line.textContent = receipt;
      status.appendChild(line);
    }
    status.hidden = false;
    $("replayed").hidden = !replayed;
  }

  function clearMessages() {
    $("status").hidden = true;
    $("replayed").hidden = true;
  }

  function fail(error) {
    if (!(error instanceof PageError)) throw error;
    show("error", error.message);
    if (error.status === 401) setTimeout(function () { window.location.reload(); }, 2500);
  }

  // ---- finding a member ---------------------------------------------------------------------------------

  function lookupBody(code) {
    if (code.indexOf("@") > 0) return {email: code};
    if (/^\+?[0-9][0-9 ()-]{5,}$/.test(code) && !/[A-Za-z_]/.test(code)) return {phone: code};
    return {barcode: code};
  }

  async function findMember(code) {
    code = code.trim();
    if (!code) return;
    var explain = {404: function () { return t("error.not_found", {code: code}); }};
    try {
      var result = await api("POST", "/api/v1/checkout/lookup", lookupBody(code), null, explain);
      if (state.member === null || state.member.id !== result.data.id) {
        clearMessages();
        forgetUndo();
        resetEarn();
      }
      state.code = result.data.barcode_value || code;
      showMember(result.data);
    } catch (error) {
      fail(error);
    }
  }

  async function refreshMember() {
    if (!state.code) return;
    var result = await api("POST", "/api/v1/checkout/lookup", {barcode: state.code});
    showMember(result.data);
  }

  function showMember(member) {
    state.member = member;
    $("enrol").hidden = true;
    $("scan").hidden = false;
    $("scan").classList.add("compact");
    $("member").hidden = false;
    $("member-name").textContent = member.name;
    $("member-tier").textContent = member.tier || "";
    $("member-tier").hidden = !member.tier;
    $("member-points").textContent = n(member.available_points);
    $("member-held").textContent = member.held_points ? t("member.held", {points: n(member.held_points)}) : "";
    showRewards(member);
    showHolds(member);
    $("code").value = "";
  }

  function showRewards(member) {
    var list = $("rewards");
    list.textContent = "";
    var rewards = member.rewards || member.redeemable_rewards || [];
    if (!rewards.length) {
      var empty = document.createElement("li");
      empty.className = "hint";
      empty.textContent = t("member.no_rewards");
      list.appendChild(empty);
    }
    rewards.forEach(function (reward) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "reward";
      button.dataset.rewardId = reward.id;
      button.disabled = reward.points_cost > member.available_points;
      var name = document.createElement("span");
      name.textContent = reward.name;
      var cost = document.createElement("span");
      cost.className = "cost";
      cost.textContent = t("member.reward_cost", {points: n(reward.points_cost)});
      button.append(name, cost);
      button.addEventListener("click", function () { askToRedeem(reward); });
      item.appendChild(button);
      list.appendChild(item);
    });
  }

  function showHolds(member) {
    var holds = (member.holds || member.active_holds || []).filter(function (h) { return h.status === "held"; });
    $("holds").hidden = holds.length === 0;
    var list = $("hold-list");
    list.textContent = "";
    holds.forEach(function (hold) {
      var item = document.createElement("li");
      var what = document.createElement("span");
      what.textContent = (hold.reward_name || hold.reward && hold.reward.name || "") + " " +
        t("member.reward_cost", {points: n(hold.points)}) + " · " +
        t("hold.expires", {time: times.format(new Date(hold.expires_at))});
      var capture = document.createElement("button");
      capture.type = "button";
      capture.className = "primary";
      capture.textContent = t("hold.capture");
      capture.addEventListener("click", function () { finishHold(hold, "capture"); });
      var release = document.createElement("button");
      release.type = "button";
      release.textContent = t("hold.void");
      release.addEventListener("click", function () { finishHold(hold, "void"); });
      item.append(what, capture, release);
      list.appendChild(item);
    });
  }

  function nextCustomer() {
    state.member = null;
    state.code = null;
    resetEarn();
    forgetUndo();
    clearMessages();
    $("member").hidden = true;
    $("scan").classList.remove("compact");
    $("code").focus();
  }

  // ---- earn -----------------------------------------------------------------------------------------------

  function resetEarn() {
    state.amount = "";
    state.earnKey = null;
    $("amount").textContent = "0";
  }

  function pressKey(key) {
    if (!state.earnKey) state.earnKey = newKey();  // the earn starts with its first key press
    var amount = state.amount;
    if (key === "C") amount = "";
    else if (key === "⌫") amount = amount.slice(0, -1);
    else if (key === ".") amount = amount.indexOf(".") >= 0 ? amount : (amount || "0") + ".";
    else if (/^[0-9]$/.test(key)) {
      var decimals = amount.indexOf(".") >= 0 ? amount.split(".")[1].length : 0;
      if (decimals < 2 && amount.replace(".", "").length < 9) amount = amount === "0" ? key : amount + key;
    }
    state.amount = amount;
    $("amount").textContent = amount || "0";
  }

  async function earn() {
    var member = state.member;
    if (!member) return;
    if (!state.amount || Number(state.amount) <= 0) {
      show("error", t("error.amount"));
      return;
    }
    var key = state.earnKey || (state.earnKey = newKey());
    try {
      var result = await api("POST", "/api/v1/members/" + member.id + "/earn", {amount: state.amount}, key);
      var entry = result.data.transaction;
      if (state.earnKey === key) resetEarn();  // a second tap's answer must not clear a new amount
      remember(entry);
      showMember(Object.assign({}, member, result.data.member, {rewards: member.rewards, holds: member.holds}));
      show("ok", t("earn.done", {points: n(entry.points), available: n(result.data.member.available_points)}),
           result.replayed, result.data.receipt);
      refreshMember().catch(fail);
    } catch (error) {
      fail(error);
    }
  }

  // ---- redeem: hold -> confirm -> capture (or straight redeem after the confirm, without the holds API) ---

  /* Too few points: the balance on screen may be stale (another till spent some), so look again and say how
     many there are now. */
  async function failRedeem(error, reward) {
    var tooFew = error instanceof PageError && error.status === 409 && error.problem.title === "Not enough points";
    await refreshMember().catch(function () {});
    if (!tooFew) return fail(error);
    show("error", t("error.not_enough", {available: n(state.member.available_points), needed: n(reward.points_cost)}));
  }

  async function askToRedeem(reward) {
    if (state.pending) return;  // a confirmation is open already
    var pending = {reward: reward, key: newKey(), hold: null};
    state.pending = pending;
    $("confirm-text").textContent = t("redeem.confirm", {reward: reward.name, points: n(reward.points_cost)});
    $("confirm-note").hidden = !boot.holds;
    if (boot.holds) {
      try {
        var result = await api("POST", "/api/v1/checkout/holds", {member_id: state.member.id, reward_id: reward.id},
                               pending.key);
        pending.hold = result.data;
      } catch (error) {
        state.pending = null;
        await failRedeem(error, reward);
        return;
      }
    }
    $("confirm").showModal();
  }

  async function confirmRedeem() {
    var pending = state.pending;
    if (!pending) return;
    try {
      var result;
      if (pending.hold) {
        result = await api("POST", "/api/v1/checkout/holds/" + pending.hold.id + "/capture", {}, "capture-" + pending.hold.id,
                           {409: holdEnded});
      } else {
        result = await api("POST", "/api/v1/members/" + state.member.id + "/redeem", {reward_id: pending.reward.id},
                           pending.key);
      }
      closeConfirm();
      var entry = result.data.transaction;
      if (entry) remember(entry);
      await refreshMember();
      show("ok", t("redeem.done", {reward: pending.reward.name, available: n(state.member.available_points)}),
           result.replayed, result.data.receipt);
    } catch (error) {
      closeConfirm();
      await failRedeem(error, pending.reward);
    }
  }

  async function cancelRedeem() {
    var pending = state.pending;
    closeConfirm();
    if (!pending) return;
    try {
      if (pending.hold) await api("POST", "/api/v1/checkout/holds/" + pending.hold.id + "/void", {}, "void-" + pending.hold.id,
                                  {409: holdEnded});
      show("info", t("redeem.cancelled"));
      await refreshMember();
    } catch (error) {
      fail(error);
    }
  }

  function closeConfirm() {
    state.pending = null;
    if ($("confirm").open) $("confirm").close();
  }

  function holdEnded(problem) {
    var status = (problem.detail || "").match(/\b(expired|voided|captured)\b/);
    return t("error.hold_finished", {status: status ? t("hold.status." + status[1]) : problem.title || ""});
  }

  async function finishHold(hold, action) {
    try {
      var result = await api("POST", "/api/v1/checkout/holds/" + hold.id + "/" + action, {}, action + "-" + hold.id,
                             {409: holdEnded});
      if (result.data.transaction) remember(result.data.transaction);
      await refreshMember();
      show(action === "capture" ? "ok" : "info", action === "capture"
        ? t("redeem.done", {reward: hold.reward_name || "", available: n(state.member.available_points)})
        : t("redeem.cancelled"), result.replayed);
    } catch (error) {
      fail(error);
      refreshMember().catch(function () {});
    }
  }

  // ---- undo the last charge within a minute ---------------------------------------------------------------

  function remember(entry) {
    forgetUndo();
    state.last = {transactionId: entry.id, at: Date.now()};
    tickUndo();
    state.undoTimer = setInterval(tickUndo, 1000);
  }

  function tickUndo() {
    var left = state.last ? UNDO_SECONDS - Math.floor((Date.now() - state.last.at) / 1000) : 0;
    if (left <= 0) {
      forgetUndo();
      return;
    }
    $("undo").textContent = t("undo", {seconds: left});
    $("undo").hidden = false;
  }

  function forgetUndo() {
    clearInterval(state.undoTimer);
    state.undoTimer = null;
    state.last = null;
    $("undo").hidden = true;
  }

  async function undo() {
    var last = state.last;
    if (!last) return;
    try {
      var result = await api("POST", "/api/v1/transactions/" + last.transactionId + "/reverse", {},
                             "undo-" + last.transactionId);
      forgetUndo();
      await refreshMember();
      show("info", t("undo.done", {available: n(state.member.available_points)}), result.replayed);
    } catch (error) {
      fail(error);
    }
  }

  // ---- camera and keyboard-wedge scanners -----------------------------------------------------------------

  async function toggleCamera() {
    var button = $("camera-button");
    if (scanner.running()) {
      scanner.stop();
      button.textContent = t("scan.camera");
      return;
    }
    var problem = scanner.cameraProblem();
    if (problem) {
      note(problem === "insecure" ? t("scan.no_camera_insecure") : t("scan.no_camera", {reason: problem}));
      return;
    }
    try {
      button.textContent = t("scan.stop");
      note(t("scan.looking"));
      await scanner.start($("camera"), function (text) {
        button.textContent = t("scan.camera");
        $("camera-note").hidden = true;
        $("code").value = text;
        findMember(text);
      });
    } catch (error) {
      button.textContent = t("scan.camera");
      note(t("scan.no_camera", {reason: error.name || String(error)}));
    }
  }

  function note(text) {
    $("camera-note").textContent = text;
    $("camera-note").hidden = false;
  }

  /* A USB or Bluetooth scanner types the code and Enter. When nothing editable has the focus (after a tap on a
     button, say), the first character moves the focus to the code field, so the scan lands there. */
  function catchWedgeTyping(event) {
    var target = event.target;
    var editable = target && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName));
    if (editable || event.ctrlKey || event.metaKey || event.altKey || event.key.length !== 1) return;
    if ($("confirm").open || !$("enrol").hidden) return;
    $("code").focus();
  }

  // ---- enrol at the counter ---------------------------------------------------------------------------------

  var enrolKey = null;

  function openEnrol() {
    nextCustomer();
    enrolKey = newKey();
    var select = $("enrol-program");
    select.textContent = "";
    boot.programs.forEach(function (program) {
      var option = document.createElement("option");
      option.value = program.id;
      option.textContent = program.name;
      select.appendChild(option);
    });
    select.parentElement.querySelector("label[for=enrol-program]").hidden = boot.programs.length < 2;
    select.hidden = boot.programs.length < 2;
    $("enrol-form").reset();
    $("enrol-form").hidden = false;
    $("enrolled").hidden = true;
    $("enrol").hidden = false;
    $("scan").hidden = true;  // the form, then the card's QR, get the whole screen
    $("enrol-name").focus();
  }

  async function enrol(event) {
    event.preventDefault();
    var body = {program_id: Number($("enrol-program").value), name: $("enrol-name").value.trim(),
                locale: boot.locale};
    if ($("enrol-email").value.trim()) body.email = $("enrol-email").value.trim();
    if ($("enrol-phone").value.trim()) body.phone = $("enrol-phone").value.trim();
    try {
      var result = await api("POST", "/api/v1/checkout/members", body, enrolKey);
      var member = result.data;
      $("enrol-form").hidden = true;
      $("enrolled-text").textContent = t("enrol.done", {name: member.name});
      $("enrolled-qr").src = "/checkout/members/" + member.id + "/card-qr.svg";
      $("enrolled-qr").alt = member.apple_pass_url;
      $("enrolled").hidden = false;
      $("enrolled-continue").onclick = function () {
        $("enrol").hidden = true;
        findMember(member.barcode_value);
      };
      if (result.replayed) show("info", t("already_done"));
    } catch (error) {
      fail(error);
    }
  }

  // ---- wiring -------------------------------------------------------------------------------------------------

  $("lookup-form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (scanner.running()) toggleCamera();
    findMember($("code").value);
  });
  $("camera-button").addEventListener("click", toggleCamera);
  $("enrol-button").addEventListener("click", openEnrol);
  $("enrol-cancel").addEventListener("click", function () {
    $("enrol").hidden = true;
    $("scan").hidden = false;
    $("code").focus();
  });
  $("enrol-form").addEventListener("submit", enrol);
  $("keypad").addEventListener("click", function (event) {
    var key = event.target.closest("[data-key]");
    if (key) pressKey(key.dataset.key);
  });
  $("earn").addEventListener("click", earn);
  $("confirm-yes").addEventListener("click", confirmRedeem);
  $("confirm-no").addEventListener("click", cancelRedeem);
  $("confirm").addEventListener("cancel", function (event) { event.preventDefault(); cancelRedeem(); });
  $("undo").addEventListener("click", undo);
  $("next").addEventListener("click", nextCustomer);
  document.addEventListener("keydown", catchWedgeTyping);

  /* A scanner that fires before this script has loaded submits the form the plain way (GET ?code=...): pick that
     scan up instead of losing it, and take the code out of the address bar so a reload does not repeat it. */
  var early = new URLSearchParams(location.search).get("code");
  if (early) {
    var rest = new URLSearchParams(location.search);
    rest.delete("code");
    history.replaceState(null, "", location.pathname + (rest.toString() ? "?" + rest : "") + location.hash);
    findMember(early);
  }
})();
