'use strict';

// Lets a scenario wait for the Go test between phases, such as while the test
// stops and restarts a server. The test writes one line on the script's
// standard input for each phase it has finished.

const readline = require('readline');

let input = null;
// lines contains the lines that no waiter has taken yet.
const lines = [];
// waiters contains the resolve functions of pending waitForTest calls.
const waiters = [];

function listen() {
  if (input !== null) {
    return;
  }
  input = readline.createInterface({ input: process.stdin });
  input.on('line', (line) => {
    const waiter = waiters.shift();
    if (waiter) {
      waiter(line);
    } else {
      lines.push(line);
    }
  });
}

// Resolve with the next line from the Go test, or reject after timeoutMs.
function waitForTest(timeoutMs = 30000) {
  listen();
  if (lines.length > 0) {
    return Promise.resolve(lines.shift());
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiters.splice(waiters.indexOf(done), 1);
      reject(new Error('the Go test sent no line within ' + timeoutMs + ' ms'));
    }, timeoutMs);
    const done = (line) => {
      clearTimeout(timer);
      resolve(line);
    };
    waiters.push(done);
  });
}

module.exports = { waitForTest };
