// Debian's Chromium through playwright-core, as root in a container, with nothing reaching out
// to the network. CHROMIUM names the executable (default /usr/bin/chromium).

import { chromium } from 'playwright-core';

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
