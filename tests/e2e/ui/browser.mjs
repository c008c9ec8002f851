// The browsers the UI tests drive, from Debian's packages, with nothing downloaded and nothing
// reaching out to the network: Chromium through playwright-core, Firefox ESR through
// puppeteer-core over WebDriver BiDi. CHROMIUM and FIREFOX name other executables.
// Screenshots go to CLEW_SCREENSHOTS (default <os tmp>/clew-ui-screenshots).

import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

export const SCREENSHOTS = process.env.CLEW_SCREENSHOTS || path.join(tmpdir(), 'clew-ui-screenshots');
mkdirSync(SCREENSHOTS, { recursive: true });

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export function launchFirefox() {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
    headless: true,
    args: ['--no-remote', '--width=1400', '--height=900'],
  });
}
