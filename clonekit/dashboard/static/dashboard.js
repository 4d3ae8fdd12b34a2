// Live progress of the dashboard's background actions: poll each running job, reload when it ends.
(function () {
  "use strict";
  var running = document.querySelectorAll("[data-job]");
  var rows = document.querySelectorAll("[data-job-row][data-state=running]");
  var ids = {};
  running.forEach(function (el) { ids[el.getAttribute("data-job")] = true; });
  rows.forEach(function (el) { ids[el.getAttribute("data-job-row")] = true; });
  Object.keys(ids).forEach(function (id) {
    function poll() {
      fetch("/jobs/" + encodeURIComponent(id), { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (job) {
          var text = job.action + ": " + job.task + (job.total ? " (" + Math.round(100 * job.done / job.total) + "%)" : "");
          document.querySelectorAll('[data-job="' + id + '"], [data-job-row="' + id + '"] .task').forEach(function (el) {
            el.textContent = text;
          });
          if (job.state === "running") { setTimeout(poll, 1000); } else { window.location.reload(); }
        })
        .catch(function () { setTimeout(poll, 3000); });
    }
    setTimeout(poll, 500);
  });
})();
