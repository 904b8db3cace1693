// The page of `detector serve`: send the text (or a file's bytes) to /v1/render and show the answer,
// which the server renders with the same template as `detector score --html`.
"use strict";
const form = document.getElementById("form");
const box = document.getElementById("text");
const fileInput = document.getElementById("file");
const button = document.getElementById("score");
const statusLine = document.getElementById("status");
const result = document.getElementById("result");

function say(message, isError) {
  statusLine.textContent = message;
  statusLine.className = isError ? "error" : "";
}

async function render(body, type, query) {
  const headers = {"Content-Type": type};
  const token = document.getElementById("token");
  if (token && token.value) headers.Authorization = "Bearer " + token.value;
  button.disabled = true;
  say("scoring…", false);
  try {
    const response = await fetch("/v1/render" + (query || ""), {method: "POST", headers, body});
    let answer;
    try { answer = await response.json(); } catch (e) { answer = {error: response.status + " " + response.statusText}; }
    if (!response.ok) { say("error: " + answer.error, true); return; }
    result.innerHTML = answer.html;  // escaped by the server's template
    say("", false);
  } catch (err) {
    say("error: " + err.message, true);
  } finally {
    button.disabled = false;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  render(JSON.stringify({text: box.value}), "application/json");
});

box.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
});

// A file goes as its bytes: the server decodes it as `detector score FILE` would (UTF-8, no binary).
async function sendFile(file) {
  const bytes = await file.arrayBuffer();
  box.value = new TextDecoder("utf-8").decode(bytes);
  render(bytes, "text/plain", "?source=" + encodeURIComponent(file.name));
}

fileInput.addEventListener("change", () => { if (fileInput.files.length) sendFile(fileInput.files[0]); });
box.addEventListener("dragover", (event) => { event.preventDefault(); box.classList.add("over"); });
box.addEventListener("dragleave", () => box.classList.remove("over"));
box.addEventListener("drop", (event) => {
  event.preventDefault();
  box.classList.remove("over");
  if (event.dataTransfer.files.length) sendFile(event.dataTransfer.files[0]);
});
