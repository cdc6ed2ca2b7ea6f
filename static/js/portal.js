/* maxportal's page behaviour (no framework besides the vendored htmx):
   - every <time datetime> gets the reader's local time as its hover title;
   - htmx swaps 409 and 422 answers (a refused move, a missing reason) instead of dropping them. */
(function () {
  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.title = "your time: " + d.toLocaleString(); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
  document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
  document.addEventListener("htmx:configRequest", function () {});
  if (window.htmx) { configure(); } else { document.addEventListener("DOMContentLoaded", configure); }
  function configure() {
    if (!window.htmx) { return; }
    window.htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "409", swap: true, error: false },
      { code: "422", swap: true, error: false },
      { code: "[45]..", swap: false, error: true },
    ];
  }
})();
