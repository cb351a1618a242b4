// A chosen file's content as base64 (file secrets are sent as `value_b64`).

export function readFileBase64(file: File): Promise<string> {
	return new Promise((resolve, reject) => {
		const reader = new FileReader();
		// A data URL is `data:<type>;base64,<content>`.
		reader.onload = () => resolve(String(reader.result).replace(/^[^,]*,/, ''));
		reader.onerror = () => reject(reader.error ?? new Error('cannot read the file'));
		reader.readAsDataURL(file);
	});
}
