import { describe, expect, it } from 'vitest';
import { AnsiHtml, AnsiParser, ansiToHtml, parseAnsi, stripAnsi } from './ansi';

const E = '\x1b';

describe('ansi', () => {
	it('leaves plain text alone (escaped)', () => {
		expect(ansiToHtml('building /nix/store/abc-hello.drv\n')).toBe(
			'building /nix/store/abc-hello.drv\n'
		);
	});

	it('renders the 16 colours and bold as classes', () => {
		expect(ansiToHtml(`${E}[31merror${E}[0m: x`)).toBe(
			'<span class="ansi-fg-1">error</span>: x'
		);
		expect(ansiToHtml(`${E}[1;35mwarning:${E}[0m y`)).toBe(
			'<span class="ansi-bold ansi-fg-5">warning:</span> y'
		);
		expect(ansiToHtml(`${E}[92mok${E}[m`)).toBe('<span class="ansi-fg-10">ok</span>');
		expect(ansiToHtml(`${E}[44;97mhi${E}[49m!`)).toBe(
			'<span class="ansi-fg-15 ansi-bg-4">hi</span><span class="ansi-fg-15">!</span>'
		);
	});

	it('renders 256 colours and truecolour', () => {
		expect(ansiToHtml(`${E}[38;5;9ma${E}[38;5;208mb${E}[38;5;244mc`)).toBe(
			'<span class="ansi-fg-9">a</span><span style="color:rgb(255,135,0)">b</span>' +
				'<span style="color:rgb(128,128,128)">c</span>'
		);
		expect(ansiToHtml(`${E}[38;2;10;20;30;48;2;255;0;0mx`)).toBe(
			'<span style="color:rgb(10,20,30);background-color:rgb(255,0,0)">x</span>'
		);
		// Colon form with a colour-space id, and out-of-range components clamped.
		expect(ansiToHtml(`${E}[38:2::1:2:3mx${E}[38;2;999;0;0my`)).toBe(
			'<span style="color:rgb(1,2,3)">x</span><span style="color:rgb(255,0,0)">y</span>'
		);
	});

	it('nests: attributes add up and are taken away one by one', () => {
		const segments = parseAnsi(`${E}[1mA${E}[4mB${E}[31mC${E}[22mD${E}[39;24mE${E}[0mF`);
		expect(segments).toEqual([
			{ text: 'A', classes: 'ansi-bold', style: '' },
			{ text: 'B', classes: 'ansi-bold ansi-underline', style: '' },
			{ text: 'C', classes: 'ansi-bold ansi-underline ansi-fg-1', style: '' },
			{ text: 'D', classes: 'ansi-underline ansi-fg-1', style: '' },
			{ text: 'EF', classes: '', style: '' }
		]);
	});

	it('resets with 0, an empty parameter and ESC[m', () => {
		expect(ansiToHtml(`${E}[31ma${E}[0mb${E}[32mc${E}[mD${E}[33;mE`)).toBe(
			'<span class="ansi-fg-1">a</span>b<span class="ansi-fg-2">c</span>DE'
		);
	});

	it('swaps the colours for inverse', () => {
		expect(ansiToHtml(`${E}[7;31mx`)).toBe('<span class="ansi-inverse ansi-bg-1">x</span>');
	});

	it('escapes HTML, also inside styled text', () => {
		const html = ansiToHtml(`<script>alert("x")</script> ${E}[31m<img src=x onerror='y'>&`);
		expect(html).toBe(
			'&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; ' +
				'<span class="ansi-fg-1">&lt;img src=x onerror=&#39;y&#39;&gt;&amp;</span>'
		);
		const div = document.createElement('div');
		div.innerHTML = html;
		expect(div.querySelector('script, img')).toBeNull();
	});

	it('drops other escape sequences and control characters', () => {
		const text =
			`${E}[2K${E}[1A${E}[?25l` + // erase line, cursor up, hide cursor
			`${E}]0;window title\x07` + // OSC title (BEL)
			`${E}]8;;https://example.com${E}\\link${E}]8;;${E}\\` + // OSC 8 hyperlink (ST)
			`${E}(B${E}7${E}M` + // charset, save cursor, reverse index
			'a\x07b\x08c\x00d' + // bell, backspace, NUL
			`${E}[5;31mblink${E}[0m`;
		expect(ansiToHtml(text)).toBe('linkabcd<span class="ansi-fg-1">blink</span>');
		expect(ansiToHtml(`x${E}[12;34Hy${E}[Jz`)).toBe('xyz');
	});

	it('turns \\r\\n and lone \\r into newlines, keeps tabs', () => {
		expect(stripAnsi('a\r\nb\rc\td')).toBe('a\nb\nc\td');
	});

	it('continues a sequence split between pieces', () => {
		const parser = new AnsiHtml();
		expect(parser.push(`ok ${E}`)).toBe('ok ');
		expect(parser.push('[3')).toBe('');
		expect(parser.push('1mred')).toBe('<span class="ansi-fg-1">red</span>');
		// The colour carries over into the next piece, the spans stay balanced.
		expect(parser.push(' still')).toBe('<span class="ansi-fg-1"> still</span>');
		expect(parser.push(`${E}[0m\r`)).toBe('');
		expect(parser.push('\nnext')).toBe('\nnext');
		expect(parser.push(`${E}]0;tit`)).toBe('');
		expect(parser.push(`le\x07done`)).toBe('done');
	});

	it('drops an unfinished sequence at the end, and runaway ones', () => {
		const parser = new AnsiParser();
		expect(parser.push(`a${E}[3`)).toEqual([{ text: 'a', classes: '', style: '' }]);
		expect(parser.end()).toEqual([]);
		expect(stripAnsi(`${E}[${'1'.repeat(300)}`)).toBe('');
		expect(stripAnsi(`x${E}[1;\x01y`)).toBe('xy');
	});

	it('strips everything for copying', () => {
		expect(stripAnsi(`${E}[1;31merror:${E}[0m at ${E}[35m/a.nix:3:5${E}[0m`)).toBe(
			'error: at /a.nix:3:5'
		);
	});
});
